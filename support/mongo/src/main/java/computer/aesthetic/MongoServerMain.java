package computer.aesthetic;

import java.io.IOException;
import java.io.InputStream;
import java.io.PrintStream;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;

import de.bwaldvogel.mongo.MongoThreadFactory;
import de.bwaldvogel.mongo.MongoVersion;
import de.bwaldvogel.mongo.backend.memory.MemoryBackend;
import de.bwaldvogel.mongo.bson.Document;
import de.bwaldvogel.mongo.backend.Cursor;
import de.bwaldvogel.mongo.backend.aggregation.Aggregation;
import de.bwaldvogel.mongo.exception.MongoServerError;
import de.bwaldvogel.mongo.exception.MongoServerException;
import de.bwaldvogel.mongo.oplog.Oplog;
import de.bwaldvogel.mongo.oplog.OplogCursor;
import de.bwaldvogel.mongo.wire.MongoDatabaseHandler;
import de.bwaldvogel.mongo.wire.MongoExceptionHandler;
import de.bwaldvogel.mongo.wire.MongoWireMessageEncoder;
import de.bwaldvogel.mongo.wire.MongoWireProtocolHandler;
import de.bwaldvogel.mongo.wire.MongoWireReplyEncoder;
import de.bwaldvogel.mongo.wire.message.ClientRequest;
import de.bwaldvogel.mongo.wire.message.MessageHeader;
import de.bwaldvogel.mongo.wire.message.MongoMessage;
import io.netty.bootstrap.ServerBootstrap;
import io.netty.channel.Channel;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.ChannelOption;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.group.ChannelGroup;
import io.netty.channel.group.DefaultChannelGroup;
import io.netty.channel.nio.NioEventLoopGroup;
import io.netty.channel.socket.SocketChannel;
import io.netty.channel.socket.nio.NioServerSocketChannel;

/**
 * In-memory MongoDB-protocol server (de.bwaldvogel:mongo-java-server, memory backend) for tests and
 * {@code ac-appview dev}.
 *
 * <pre>java -jar mongo-server.jar [port]      (port 0 or absent = pick a free port)</pre>
 *
 * <ul>
 *   <li>Binds 127.0.0.1 only. Prints exactly one stdout line, {@code LISTENING <port>}, once the socket
 *       accepts connections; all logging goes to stderr (level: {@code -Dorg.slf4j.simpleLogger.defaultLogLevel},
 *       default {@code warn}).</li>
 *   <li>Exits cleanly on SIGTERM/SIGINT, and when stdin reaches EOF (so a parent that dies without killing us
 *       does not leave an orphan). Stdin is not watched when it is {@code /dev/null}.</li>
 *   <li>Reports MongoDB 4.4 / wire version 9: the library's default (wire 8) is below the minimum of the Node
 *       driver v7 ({@code MIN_SUPPORTED_WIRE_VERSION = 9}). Only the reported number changes.</li>
 *   <li>The oplog is enabled, so {@code collection.watch()} change streams work.</li>
 *   <li>Adds awaitData semantics to change-stream {@code getMore}: the library answers an empty batch at once,
 *       which makes drivers spin in a tight getMore loop (each one scanning the whole oplog). Here an empty
 *       change-stream getMore is held until the oplog changes or {@code maxTimeMS} (default 1000 ms) passes,
 *       without blocking a Netty thread.</li>
 * </ul>
 */
public final class MongoServerMain {

    private static final String HOST = "127.0.0.1";
    private static final long DEFAULT_AWAIT_MS = 1000;

    /** MongoDB 4.4 = wire version 9, the oldest server the Node.js driver v7 accepts. */
    static final MongoVersion REPORTED_VERSION = new MongoVersion() {
        @Override
        public List<Integer> getVersionArray() {
            return List.of(4, 4, 0);
        }

        @Override
        public int getWireVersion() {
            return 9;
        }
    };

    private MongoServerMain() {
    }

    public static void main(String[] args) throws Exception {
        configureLogging();
        int port = 0;
        if (args.length > 0) {
            try {
                port = Integer.parseInt(args[0]);
            } catch (NumberFormatException e) {
                System.err.println("usage: java -jar mongo-server.jar [port]   (0 = any free port); got " + args[0]);
                System.exit(2);
            }
        }

        OplogSignal signal = new OplogSignal();
        SignallingMemoryBackend backend = new SignallingMemoryBackend(signal);
        backend.version(REPORTED_VERSION);
        backend.enableOplog();

        Server server = new Server(backend, signal);
        int boundPort;
        try {
            boundPort = server.bind(new InetSocketAddress(HOST, port));
        } catch (RuntimeException e) {
            System.err.println("failed to bind " + HOST + ":" + port + ": " + e);
            server.shutdown();
            System.exit(1);
            return;
        }
        Runtime.getRuntime().addShutdownHook(new Thread(server::shutdown, "mongo-server-shutdown"));

        PrintStream out = new PrintStream(System.out, true, StandardCharsets.UTF_8);
        out.println("LISTENING " + boundPort);
        out.flush();

        if (shouldWatchStdin()) {
            Thread watcher = new Thread(() -> {
                waitForEof(System.in);
                System.exit(0); // runs the shutdown hook
            }, "stdin-watch");
            watcher.setDaemon(true);
            watcher.start();
        }
        server.awaitClose();
    }

    private static void configureLogging() {
        setDefault("org.slf4j.simpleLogger.logFile", "System.err");
        setDefault("org.slf4j.simpleLogger.defaultLogLevel", "warn");
        setDefault("org.slf4j.simpleLogger.showDateTime", "true");
        setDefault("org.slf4j.simpleLogger.dateTimeFormat", "HH:mm:ss.SSS");
        // Every failed command (duplicate key, cursor not found, …) is logged at ERROR with a stack trace; the
        // client receives the error anyway.
        setDefault("org.slf4j.simpleLogger.log.de.bwaldvogel.mongo.wire.MongoDatabaseHandler", "off");
    }

    private static void setDefault(String key, String value) {
        if (System.getProperty(key) == null) {
            System.setProperty(key, value);
        }
    }

    private static boolean shouldWatchStdin() {
        try {
            Path target = Files.readSymbolicLink(Path.of("/proc/self/fd/0"));
            return !target.toString().equals("/dev/null");
        } catch (IOException | UnsupportedOperationException | SecurityException e) {
            return true;
        }
    }

    private static void waitForEof(InputStream in) {
        byte[] buffer = new byte[256];
        try {
            while (in.read(buffer) >= 0) {
                // discard
            }
        } catch (IOException e) {
            // treat a broken stdin like EOF
        }
    }

    /** Netty server equivalent to {@code de.bwaldvogel.mongo.MongoServer}, with {@link AwaitDataHandler}. */
    static final class Server {
        private final SignallingMemoryBackend backend;
        private final OplogSignal signal;
        private final AtomicBoolean stopped = new AtomicBoolean();
        private EventLoopGroup bossGroup;
        private EventLoopGroup workerGroup;
        private ChannelGroup clients;
        private Channel serverChannel;

        Server(SignallingMemoryBackend backend, OplogSignal signal) {
            this.backend = backend;
            this.signal = signal;
        }

        int bind(InetSocketAddress address) {
            bossGroup = new NioEventLoopGroup(1, new MongoThreadFactory("mongo-server-boss"));
            workerGroup = new NioEventLoopGroup(0, new MongoThreadFactory("mongo-server-worker"));
            clients = new DefaultChannelGroup("mongodb-channels", workerGroup.next());
            ServerBootstrap bootstrap = new ServerBootstrap()
                .group(bossGroup, workerGroup)
                .channel(NioServerSocketChannel.class)
                .option(ChannelOption.SO_BACKLOG, 128)
                .option(ChannelOption.SO_REUSEADDR, Boolean.TRUE)
                .localAddress(address)
                .childOption(ChannelOption.TCP_NODELAY, Boolean.TRUE)
                .childHandler(new ChannelInitializer<SocketChannel>() {
                    @Override
                    public void initChannel(SocketChannel ch) {
                        ch.pipeline().addLast(new MongoWireReplyEncoder());
                        ch.pipeline().addLast(new MongoWireMessageEncoder());
                        ch.pipeline().addLast(new MongoWireProtocolHandler());
                        ch.pipeline().addLast(new AwaitDataHandler(backend, clients, signal));
                        ch.pipeline().addLast(new MongoExceptionHandler());
                    }
                });
            serverChannel = bootstrap.bind().syncUninterruptibly().channel();
            return ((InetSocketAddress) serverChannel.localAddress()).getPort();
        }

        void awaitClose() throws InterruptedException {
            serverChannel.closeFuture().await();
        }

        void shutdown() {
            if (!stopped.compareAndSet(false, true)) {
                return;
            }
            try {
                if (serverChannel != null) {
                    serverChannel.close().syncUninterruptibly();
                }
                if (clients != null) {
                    clients.close().awaitUninterruptibly(2, TimeUnit.SECONDS);
                }
            } finally {
                if (bossGroup != null) {
                    bossGroup.shutdownGracefully(0, 2, TimeUnit.SECONDS).awaitUninterruptibly(3, TimeUnit.SECONDS);
                }
                if (workerGroup != null) {
                    workerGroup.shutdownGracefully(0, 2, TimeUnit.SECONDS).awaitUninterruptibly(3, TimeUnit.SECONDS);
                }
                backend.close();
            }
        }
    }

    /** Memory backend whose oplog notifies {@link OplogSignal} after every write. */
    static final class SignallingMemoryBackend extends MemoryBackend {
        private final OplogSignal signal;

        SignallingMemoryBackend(OplogSignal signal) {
            this.signal = signal;
        }

        @Override
        protected Oplog createOplog() {
            return new SignallingOplog(super.createOplog(), signal);
        }

        /** True when {@code cursorId} is a live change-stream (oplog) cursor. */
        boolean isChangeStreamCursor(long cursorId) {
            try {
                return getCursorRegistry().getCursor(cursorId) instanceof OplogCursor;
            } catch (MongoServerException e) {
                return false;
            }
        }
    }

    static final class SignallingOplog implements Oplog {
        private final Oplog delegate;
        private final OplogSignal signal;

        SignallingOplog(Oplog delegate, OplogSignal signal) {
            this.delegate = delegate;
            this.signal = signal;
        }

        @Override
        public void handleInsert(String namespace, List<Document> documents) {
            try {
                delegate.handleInsert(namespace, documents);
            } finally {
                signal.changed();
            }
        }

        @Override
        public void handleUpdate(String namespace, Document selector, Document query, List<Object> modifiedIds) {
            try {
                delegate.handleUpdate(namespace, selector, query, modifiedIds);
            } finally {
                signal.changed();
            }
        }

        @Override
        public void handleDelete(String namespace, Document query, List<Object> deletedIds) {
            try {
                delegate.handleDelete(namespace, query, deletedIds);
            } finally {
                signal.changed();
            }
        }

        @Override
        public void handleDropCollection(String namespace) {
            try {
                delegate.handleDropCollection(namespace);
            } finally {
                signal.changed();
            }
        }

        @Override
        public Cursor createCursor(Document changeStreamDocument, String namespace, Aggregation aggregation) {
            return delegate.createCursor(changeStreamDocument, namespace, aggregation);
        }
    }

    /** Version counter plus one-shot waiters, woken after every oplog write. */
    static final class OplogSignal {
        private long version;
        private final List<Runnable> waiters = new ArrayList<>();

        synchronized long version() {
            return version;
        }

        void changed() {
            List<Runnable> toRun;
            synchronized (this) {
                version++;
                if (waiters.isEmpty()) {
                    return;
                }
                toRun = new ArrayList<>(waiters);
                waiters.clear();
            }
            for (Runnable waiter : toRun) {
                waiter.run();
            }
        }

        /** Runs {@code waiter} once, as soon as the version differs from {@code seen} (maybe immediately). */
        void onChangeAfter(long seen, Runnable waiter) {
            synchronized (this) {
                if (version == seen) {
                    waiters.add(waiter);
                    return;
                }
            }
            waiter.run();
        }

        synchronized void cancel(Runnable waiter) {
            waiters.remove(waiter);
        }
    }

    /**
     * {@link MongoDatabaseHandler} that holds empty change-stream getMore replies until the oplog changes or the
     * await time passes. Everything for one request runs on the channel's event loop; nothing blocks.
     */
    static final class AwaitDataHandler extends MongoDatabaseHandler {
        private final SignallingMemoryBackend backend;
        private final OplogSignal signal;
        private final AtomicInteger responseIds = new AtomicInteger(1 << 30);

        AwaitDataHandler(SignallingMemoryBackend backend, ChannelGroup clients, OplogSignal signal) {
            super(backend, clients);
            this.backend = backend;
            this.signal = signal;
        }

        @Override
        protected void channelRead0(ChannelHandlerContext ctx, ClientRequest request) {
            if (request instanceof MongoMessage message) {
                long awaitMs = changeStreamGetMoreAwaitMs(message.getDocument());
                if (awaitMs >= 0) {
                    new PendingGetMore(ctx, message, System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(awaitMs)).attempt();
                    return;
                }
            }
            super.channelRead0(ctx, request);
        }

        /** -1 unless this is a getMore on a change-stream cursor; else how long to wait for data. */
        private long changeStreamGetMoreAwaitMs(Document command) {
            if (command.isEmpty()) {
                return -1;
            }
            String name = command.keySet().iterator().next();
            if (!name.equalsIgnoreCase("getMore") || !(command.get(name) instanceof Number cursorId)) {
                return -1;
            }
            if (!backend.isChangeStreamCursor(cursorId.longValue())) {
                return -1;
            }
            Object maxTimeMs = command.get("maxTimeMS");
            if (maxTimeMs instanceof Number n && n.longValue() > 0) {
                return n.longValue();
            }
            return DEFAULT_AWAIT_MS;
        }

        private final class PendingGetMore {
            private final ChannelHandlerContext ctx;
            private final MongoMessage message;
            private final long deadlineNanos;
            private int generation;
            private Runnable waiter;
            private ScheduledFuture<?> timer;

            PendingGetMore(ChannelHandlerContext ctx, MongoMessage message, long deadlineNanos) {
                this.ctx = ctx;
                this.message = message;
                this.deadlineNanos = deadlineNanos;
            }

            /** Always called on ctx.executor(). */
            void attempt() {
                if (!ctx.channel().isActive()) {
                    return;
                }
                long seen = signal.version();
                Document response;
                try {
                    response = backend.handleMessage(message);
                } catch (MongoServerException e) {
                    reply(errorResponse(e));
                    return;
                } catch (RuntimeException e) {
                    reply(errorResponse(new MongoServerException("Unknown error: " + e.getMessage(), e)));
                    return;
                }
                long remainingNanos = deadlineNanos - System.nanoTime();
                if (!isEmptyLiveBatch(response) || remainingNanos <= 0) {
                    reply(response);
                    return;
                }
                int armed = ++generation;
                waiter = () -> ctx.executor().execute(() -> wake(armed));
                timer = ctx.executor().schedule(() -> wake(armed), remainingNanos, TimeUnit.NANOSECONDS);
                signal.onChangeAfter(seen, waiter);
            }

            private void wake(int armed) {
                if (armed != generation) {
                    return;
                }
                generation++;
                signal.cancel(waiter);
                timer.cancel(false);
                attempt();
            }

            private void reply(Document document) {
                MessageHeader header = new MessageHeader(responseIds.incrementAndGet(), message.getHeader().getRequestID());
                ctx.channel().writeAndFlush(new MongoMessage(message.getChannel(), header, document));
            }
        }

        private static boolean isEmptyLiveBatch(Document response) {
            if (!(response.get("cursor") instanceof Document cursor)) {
                return false;
            }
            Object id = cursor.get("id");
            Object batch = cursor.get("nextBatch");
            return id instanceof Number n && n.longValue() != 0 && batch instanceof List<?> list && list.isEmpty();
        }

        /** Same shape as MongoDatabaseHandler's (private) error response. */
        private static Document errorResponse(MongoServerException exception) {
            Document document = new Document();
            document.put("$err", exception.getMessageWithoutErrorCode());
            document.put("errmsg", exception.getMessageWithoutErrorCode());
            if (exception instanceof MongoServerError error) {
                document.put("code", error.getCode());
                document.putIfNotNull("codeName", error.getCodeName());
            }
            document.put("ok", Integer.valueOf(0));
            return document;
        }
    }
}
