package computer.aesthetic;

import java.io.IOException;
import java.io.InputStream;
import java.io.PrintStream;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.Iterator;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.NavigableMap;
import java.util.Set;
import java.util.concurrent.ConcurrentSkipListMap;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.Collectors;
import java.util.stream.Stream;

import de.bwaldvogel.mongo.MongoCollection;
import de.bwaldvogel.mongo.MongoDatabase;
import de.bwaldvogel.mongo.MongoThreadFactory;
import de.bwaldvogel.mongo.MongoVersion;
import de.bwaldvogel.mongo.backend.AbstractCursor;
import de.bwaldvogel.mongo.backend.Cursor;
import de.bwaldvogel.mongo.backend.CursorRegistry;
import de.bwaldvogel.mongo.backend.Utils;
import de.bwaldvogel.mongo.backend.aggregation.Aggregation;
import de.bwaldvogel.mongo.backend.memory.MemoryBackend;
import de.bwaldvogel.mongo.bson.BsonTimestamp;
import de.bwaldvogel.mongo.bson.Document;
import de.bwaldvogel.mongo.exception.MongoServerError;
import de.bwaldvogel.mongo.exception.MongoServerException;
import de.bwaldvogel.mongo.oplog.Oplog;
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
 * In-memory MongoDB-protocol server for tests and {@code ac-appview dev}: de.bwaldvogel:mongo-java-server with its
 * memory backend, plus a change-stream implementation of our own.
 *
 * <pre>java -jar mongo-server.jar [port]      (port 0 or absent = pick a free port)</pre>
 *
 * <ul>
 *   <li>Binds 127.0.0.1 only. Prints exactly one stdout line, {@code LISTENING <port>}, once the socket accepts
 *       connections; logs go to stderr (level {@code -Dorg.slf4j.simpleLogger.defaultLogLevel}, default warn).</li>
 *   <li>Exits cleanly on SIGTERM/SIGINT and when stdin reaches EOF, so a parent that dies without killing us leaves
 *       no orphan. Stdin is not watched when it is {@code /dev/null}.</li>
 *   <li>Reports MongoDB 4.4 / wire version 9: the library's default (wire 8) is below the Node.js driver v7
 *       minimum ({@code MIN_SUPPORTED_WIRE_VERSION = 9}). Only the reported number changes.</li>
 *   <li>Change streams ({@code collection.watch()}, {@code db.watch()}) come from {@link ChangeLog}, which replaces
 *       the library's CollectionBackedOplog. That one (1.47.0) puts the update spec in {@code documentKey} of update
 *       events, has no {@code ns}/{@code updateDescription}/{@code wallTime}, reports replaceOne as an update with
 *       an empty delta, emits insert events for documents a failed insert rejected, emits nothing for
 *       findAndModify (findOneAndUpdate/Delete/Replace), answers an empty getMore at once (drivers then spin) and
 *       rescans the whole, unbounded oplog on every getMore.</li>
 *   <li>An empty change-stream getMore is held (awaitData) until something is written or {@code maxTimeMS}
 *       (default 1000 ms) passes, without blocking a Netty thread. Responses carry {@code postBatchResumeToken}.</li>
 *   <li>Failed commands (duplicate key, ...) are not logged: the client gets the error. Unexpected server errors
 *       are logged at ERROR.</li>
 *   <li>The change log keeps the last {@code -Dac.changelog.maxEntries} (default 100000) events; resuming from an
 *       older token fails with ChangeStreamHistoryLost (286), as on a real server whose oplog rolled over.</li>
 * </ul>
 */
public final class MongoServerMain {

    private static final String HOST = "127.0.0.1";
    private static final long DEFAULT_AWAIT_MS = 1000;
    private static final int DEFAULT_CHANGE_BATCH = 1000;

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

    /** Behave as a standalone mongod: no change streams (system property {@code ac.standalone}). */
    static final boolean STANDALONE = Boolean.getBoolean("ac.standalone");

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
        int maxEntries = Integer.getInteger("ac.changelog.maxEntries", 100_000);

        OplogSignal signal = new OplogSignal();
        AcMemoryBackend backend = new AcMemoryBackend(signal, maxEntries);
        backend.version(REPORTED_VERSION);
        backend.enableOplog();

        Server server = new Server(backend);
        int boundPort;
        try {
            boundPort = server.bind(new InetSocketAddress(HOST, port));
        } catch (RuntimeException e) {
            System.err.println("failed to listen on " + HOST + ":" + port + ": " + e);
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
        // Warns once per createIndexes of a non-unique index ("not yet implemented. ignoring").
        setDefault("org.slf4j.simpleLogger.log.de.bwaldvogel.mongo.backend.AbstractMongoDatabase", "error");
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
            // a broken stdin counts as EOF
        }
    }

    static Document resumeToken(long ts) {
        return new Document("_data", String.format(Locale.ROOT, "%016X", ts));
    }

    static long parseResumeToken(Object token) {
        if (token instanceof Document document && document.get("_data") instanceof String data) {
            try {
                return Long.parseUnsignedLong(data, 16);
            } catch (NumberFormatException e) {
                // fall through
            }
        }
        throw new MongoServerError(2, "BadValue", "invalid resume token: " + token);
    }

    // ------------------------------------------------------------------------------------------------ server

    /** Netty server like {@code de.bwaldvogel.mongo.MongoServer}, but with {@link AwaitDataHandler}. */
    static final class Server {
        private final AcMemoryBackend backend;
        private final AtomicBoolean stopped = new AtomicBoolean();
        private EventLoopGroup bossGroup;
        private EventLoopGroup workerGroup;
        private ChannelGroup clients;
        private Channel serverChannel;

        Server(AcMemoryBackend backend) {
            this.backend = backend;
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
                        ch.pipeline().addLast(new AwaitDataHandler(backend, clients));
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

    // ------------------------------------------------------------------------------------------------ backend

    /** Memory backend using {@link ChangeLog} as its oplog, with command hooks that keep the change log exact. */
    static final class AcMemoryBackend extends MemoryBackend {
        private final OplogSignal signal;
        private final int maxEntries;
        private ChangeLog changeLog;

        AcMemoryBackend(OplogSignal signal, int maxEntries) {
            this.signal = signal;
            this.maxEntries = maxEntries;
        }

        @Override
        protected Oplog createOplog() {
            changeLog = new ChangeLog(this, getCursorRegistry(), signal, maxEntries);
            return changeLog;
        }

        OplogSignal signal() {
            return signal;
        }

        /** The live change-stream cursor with this id, or null. */
        ChangeStreamCursor changeStreamCursor(long cursorId) {
            try {
                return getCursorRegistry().getCursor(cursorId) instanceof ChangeStreamCursor c ? c : null;
            } catch (MongoServerException e) {
                return null;
            }
        }

        @Override
        public Document handleCommand(Channel channel, String databaseName, String command, Document query) {
            if (changeLog == null) {
                return super.handleCommand(channel, databaseName, command, query);
            }
            if (command.equalsIgnoreCase("insert")) {
                changeLog.beginInsertCommand();
                Document response;
                try {
                    response = super.handleCommand(channel, databaseName, command, query);
                } catch (RuntimeException e) {
                    changeLog.endInsertCommand(null, true);
                    throw e;
                }
                // mongo-java-server treats a missing "ordered" as false (MongoDB: true); mirror what it did.
                changeLog.endInsertCommand(response, Utils.isTrue(query.get("ordered")));
                return response;
            }
            if (command.equalsIgnoreCase("findAndModify")) {
                Document response = super.handleCommand(channel, databaseName, command, query);
                changeLog.recordFindAndModify(databaseName + "." + query.get(command), query, response);
                return response;
            }
            Document response = super.handleCommand(channel, databaseName, command, query);
            if (command.equalsIgnoreCase("aggregate") || command.equalsIgnoreCase("getMore")) {
                addPostBatchResumeToken(response);
            }
            return response;
        }

        private void addPostBatchResumeToken(Document response) {
            if (response != null && response.get("cursor") instanceof Document cursor
                && cursor.get("id") instanceof Number id) {
                ChangeStreamCursor changeStream = changeStreamCursor(id.longValue());
                if (changeStream != null) {
                    cursor.put("postBatchResumeToken", resumeToken(changeStream.position()));
                }
            }
        }
    }

    // ------------------------------------------------------------------------------------------------ change log

    /** One change; {@code document} is a post-image (insert, replace), {@code updateDescription} for updates. */
    record Entry(long ts, Instant wall, String op, String db, String coll, Object id, Document document,
                 Document updateDescription) {
    }

    /**
     * Bounded in-memory log of changes, keyed by a strictly increasing BSON timestamp value, and the source of
     * change-stream events (MongoDB 4.4 shapes: {@code _id, operationType, clusterTime, wallTime, ns, documentKey,
     * fullDocument, updateDescription}). Supports {@code fullDocument: updateLookup|whenAvailable|required},
     * {@code resumeAfter}, {@code startAfter}, {@code startAtOperationTime}, further pipeline stages ($match,
     * $project, ...), collection-level and database-level ({@code db.watch()}) streams, drop + invalidate.
     */
    static final class ChangeLog implements Oplog {
        private final AcMemoryBackend backend;
        private final CursorRegistry cursorRegistry;
        private final OplogSignal signal;
        private final int maxEntries;
        private final ConcurrentSkipListMap<Long, Entry> entries = new ConcurrentSkipListMap<>();
        private final ThreadLocal<List<Entry>> pendingInserts = new ThreadLocal<>();
        private int size;
        private int lastSeconds;
        private int lastIncrement;
        private long lastTs;
        private volatile long trimmedThrough;

        ChangeLog(AcMemoryBackend backend, CursorRegistry cursorRegistry, OplogSignal signal, int maxEntries) {
            this.backend = backend;
            this.cursorRegistry = cursorRegistry;
            this.signal = signal;
            this.maxEntries = Math.max(1, maxEntries);
        }

        // ---- recording

        private void append(List<Entry> batch) {
            if (batch.isEmpty()) {
                return;
            }
            synchronized (this) {
                for (Entry entry : batch) {
                    Entry stamped = new Entry(nextTs(), Instant.now(), entry.op(), entry.db(), entry.coll(), entry.id(),
                        entry.document(), entry.updateDescription());
                    entries.put(stamped.ts(), stamped);
                    size++;
                }
                while (size > maxEntries) {
                    Map.Entry<Long, Entry> first = entries.pollFirstEntry();
                    size--;
                    trimmedThrough = first.getKey();
                }
            }
            signal.changed();
        }

        private long nextTs() {
            int seconds = (int) Instant.now().getEpochSecond();
            if (seconds > lastSeconds) {
                lastSeconds = seconds;
                lastIncrement = 1;
            } else {
                lastIncrement++;
            }
            lastTs = new BsonTimestamp(Instant.ofEpochSecond(lastSeconds), lastIncrement).getValue();
            return lastTs;
        }

        private synchronized long lastTs() {
            if (lastTs == 0) {
                lastTs = new BsonTimestamp(Instant.now(), 0).getValue();
                lastSeconds = (int) Instant.now().getEpochSecond();
            }
            return lastTs;
        }

        private static Entry entry(String op, String namespace, Object id, Document document, Document description) {
            return new Entry(0, null, op, Utils.getDatabaseNameFromFullName(namespace),
                Utils.getCollectionNameFromFullName(namespace), id, document, description);
        }

        void beginInsertCommand() {
            pendingInserts.set(new ArrayList<>());
        }

        /** Records the documents an insert command really stored (writeErrors name the rejected ones). */
        void endInsertCommand(Document response, boolean ordered) {
            List<Entry> pending = pendingInserts.get();
            pendingInserts.remove();
            if (pending == null || response == null) {
                return;
            }
            Set<Integer> failed = new HashSet<>();
            int firstFailure = Integer.MAX_VALUE;
            if (response.get("writeErrors") instanceof List<?> errors) {
                for (Object error : errors) {
                    if (error instanceof Document document && document.get("index") instanceof Number index) {
                        failed.add(index.intValue());
                        firstFailure = Math.min(firstFailure, index.intValue());
                    }
                }
            }
            List<Entry> stored = new ArrayList<>();
            for (int i = 0; i < pending.size(); i++) {
                if (failed.contains(i) || (ordered && i > firstFailure)) {
                    continue;
                }
                stored.add(pending.get(i));
            }
            append(stored);
        }

        @Override
        public void handleInsert(String namespace, List<Document> documents) {
            List<Entry> batch = new ArrayList<>(documents.size());
            for (Document document : documents) {
                batch.add(entry("insert", namespace, document.get("_id"), document.cloneDeeply(), null));
            }
            List<Entry> pending = pendingInserts.get();
            if (pending != null) {
                pending.addAll(batch);
            } else {
                append(batch);
            }
        }

        @Override
        public void handleUpdate(String namespace, Document selector, Document query, List<Object> modifiedIds) {
            boolean replacement = query.keySet().stream().noneMatch(key -> key.startsWith("$"));
            List<Entry> batch = new ArrayList<>(modifiedIds.size());
            for (Object id : modifiedIds) {
                Document current = lookup(Utils.getDatabaseNameFromFullName(namespace),
                    Utils.getCollectionNameFromFullName(namespace), id);
                if (replacement) {
                    batch.add(entry("replace", namespace, id, current, null));
                } else {
                    batch.add(entry("update", namespace, id, null, describeUpdate(query, current)));
                }
            }
            append(batch);
        }

        @Override
        public void handleDelete(String namespace, Document query, List<Object> deletedIds) {
            List<Entry> batch = new ArrayList<>(deletedIds.size());
            for (Object id : deletedIds) {
                batch.add(entry("delete", namespace, id, null, null));
            }
            append(batch);
        }

        @Override
        public void handleDropCollection(String namespace) {
            append(List.of(entry("drop", namespace, null, null, null)));
        }

        /** findAndModify does not call the oplog in mongo-java-server; derive the change from its response. */
        void recordFindAndModify(String namespace, Document command, Document response) {
            if (response == null || !Utils.isTrue(response.get("ok"))) {
                return;
            }
            Document value = response.get("value") instanceof Document d ? d : null;
            Document lastError = response.get("lastErrorObject") instanceof Document d ? d : null;
            Document selector = command.get("query") instanceof Document d ? d : new Document();
            if (Utils.isTrue(command.get("remove"))) {
                if (value != null && value.containsKey("_id")) {
                    handleDelete(namespace, selector, List.of(value.get("_id")));
                }
                return;
            }
            if (!(command.get("update") instanceof Document update)) {
                return;
            }
            if (lastError != null && Utils.isTrue(lastError.get("updatedExisting"))) {
                Object id = value != null && value.containsKey("_id") ? value.get("_id") : null;
                if (id == null) {
                    Document match = lookupOne(namespace, selector);
                    id = match == null ? null : match.get("_id");
                }
                if (id != null) {
                    handleUpdate(namespace, selector, update, List.of(id));
                }
            } else if (Utils.isTrue(command.get("upsert"))) {
                Document inserted = value != null && value.containsKey("_id")
                    ? lookupOne(namespace, new Document("_id", value.get("_id")))
                    : lookupOne(namespace, selector);
                if (inserted != null) {
                    handleInsert(namespace, List.of(inserted));
                }
            }
        }

        private Document lookupOne(String namespace, Document selector) {
            MongoCollection<?> collection = collection(Utils.getDatabaseNameFromFullName(namespace),
                Utils.getCollectionNameFromFullName(namespace));
            if (collection == null) {
                return null;
            }
            for (Document document : collection.handleQuery(selector, 0, 1)) {
                return document.cloneDeeply();
            }
            return null;
        }

        /** The current document with this _id (a copy), or null. */
        Document lookup(String db, String coll, Object id) {
            MongoCollection<?> collection = collection(db, coll);
            if (collection == null) {
                return null;
            }
            for (Document document : collection.handleQuery(new Document("_id", id), 0, 1)) {
                return document.cloneDeeply();
            }
            return null;
        }

        private MongoCollection<?> collection(String db, String coll) {
            MongoDatabase database = backend.resolveDatabase(db);
            return database == null ? null : database.resolveCollection(coll, false);
        }

        /** updateDescription from the update operators and the post-image. */
        private static Document describeUpdate(Document update, Document postImage) {
            Document updatedFields = new Document();
            List<String> removedFields = new ArrayList<>();
            for (String operator : update.keySet()) {
                if (!(update.get(operator) instanceof Document fields)) {
                    continue;
                }
                switch (operator) {
                    case "$unset" -> removedFields.addAll(fields.keySet());
                    case "$setOnInsert" -> {
                    }
                    case "$rename" -> {
                        for (String from : fields.keySet()) {
                            removedFields.add(from);
                            if (fields.get(from) instanceof String to) {
                                updatedFields.put(to, valueAt(postImage, to));
                            }
                        }
                    }
                    default -> {
                        for (String path : fields.keySet()) {
                            String concrete = beforePositional(path);
                            updatedFields.put(concrete, valueAt(postImage, concrete));
                        }
                    }
                }
            }
            return new Document("updatedFields", updatedFields)
                .append("removedFields", removedFields)
                .append("truncatedArrays", List.of());
        }

        private static String beforePositional(String path) {
            List<String> kept = new ArrayList<>();
            for (String part : path.split("\\.")) {
                if (part.startsWith("$")) {
                    break;
                }
                kept.add(part);
            }
            return kept.isEmpty() ? path : String.join(".", kept);
        }

        private static Object valueAt(Document document, String path) {
            Object current = document;
            for (String part : path.split("\\.")) {
                if (current instanceof Document d) {
                    current = d.get(part);
                } else if (current instanceof List<?> list && part.chars().allMatch(Character::isDigit)
                    && !part.isEmpty() && Integer.parseInt(part) < list.size()) {
                    current = list.get(Integer.parseInt(part));
                } else {
                    return null;
                }
            }
            return current;
        }

        // ---- reading

        @Override
        public Cursor createCursor(Document changeStream, String namespace, Aggregation aggregation) {
            if (STANDALONE) {
                // -Dac.standalone=true: answer as a standalone mongod does (tests of `ac-appview doctor`).
                throw new MongoServerError(40573, "The $changeStream stage is only supported on replica sets");
            }
            String db = Utils.getDatabaseNameFromFullName(namespace);
            String coll = Utils.getCollectionNameFromFullName(namespace);
            boolean wholeDatabase = coll.equals("1"); // db.watch() sends {aggregate: 1}
            Object fullDocument = changeStream.getOrDefault("fullDocument", "default");
            long start;
            if (changeStream.get("startAfter") != null) {
                start = parseResumeToken(changeStream.get("startAfter"));
            } else if (changeStream.get("resumeAfter") != null) {
                start = parseResumeToken(changeStream.get("resumeAfter"));
            } else if (changeStream.get("startAtOperationTime") instanceof BsonTimestamp ts) {
                start = ts.getValue() - 1;
            } else {
                start = lastTs();
            }
            checkHistory(start);
            ChangeStreamCursor cursor = new ChangeStreamCursor(cursorRegistry.generateCursorId(), this, db,
                wholeDatabase ? null : coll, String.valueOf(fullDocument), aggregation, start);
            cursorRegistry.add(cursor);
            return cursor;
        }

        void checkHistory(long position) {
            if (Long.compareUnsigned(position, trimmedThrough) < 0) {
                throw new MongoServerError(286, "ChangeStreamHistoryLost",
                    "Resume of change stream was not possible, as the resume point may no longer be in the oplog"
                        + " (this server keeps the last " + maxEntries + " changes; -Dac.changelog.maxEntries)");
            }
        }

        NavigableMap<Long, Entry> after(long position) {
            if (entries.isEmpty()) {
                return entries.subMap(position, false, position, false);
            }
            long end = entries.lastKey();
            if (Long.compareUnsigned(end, position) <= 0) {
                return entries.subMap(position, false, position, false);
            }
            return entries.subMap(position, false, end, true);
        }
    }

    /** Cursor over {@link ChangeLog} entries after {@code position} (exclusive). */
    static final class ChangeStreamCursor extends AbstractCursor {
        private final ChangeLog log;
        private final String db;
        private final String coll; // null: whole database
        private final String fullDocument;
        private final Aggregation aggregation;
        private volatile long position;
        private volatile boolean invalidated;

        ChangeStreamCursor(long id, ChangeLog log, String db, String coll, String fullDocument, Aggregation aggregation,
                           long position) {
            super(id);
            this.log = log;
            this.db = db;
            this.coll = coll;
            this.fullDocument = fullDocument;
            this.aggregation = aggregation;
            this.position = position;
        }

        long position() {
            return position;
        }

        @Override
        public boolean isEmpty() {
            return invalidated;
        }

        @Override
        public synchronized List<Document> takeDocuments(int numberToReturn) {
            if (invalidated) {
                return List.of();
            }
            log.checkHistory(position);
            int limit = numberToReturn > 0 ? numberToReturn : DEFAULT_CHANGE_BATCH;
            NavigableMap<Long, Entry> slice = log.after(position);
            if (slice.isEmpty()) {
                return List.of();
            }
            long end = slice.lastKey();
            Stream<Document> events = slice.values().stream()
                .filter(this::concerns)
                .flatMap(this::toEvents);
            List<Document> batch = aggregation.runStagesAsStream(events).limit(limit).collect(Collectors.toList());
            for (Iterator<Document> it = batch.iterator(); it.hasNext(); ) {
                if (invalidated) {
                    it.remove();
                } else if ("invalidate".equals(it.next().get("operationType"))) {
                    invalidated = true;
                }
            }
            if (batch.size() < limit) {
                position = end;
            } else {
                Object token = batch.get(batch.size() - 1).get("_id");
                position = token == null ? end : parseResumeToken(token);
            }
            return batch;
        }

        private boolean concerns(Entry entry) {
            return entry.db().equals(db) && (coll == null || entry.coll().equals(coll));
        }

        private Stream<Document> toEvents(Entry entry) {
            Document event = new Document("_id", resumeToken(entry.ts()))
                .append("operationType", entry.op())
                .append("clusterTime", new BsonTimestamp(entry.ts()))
                .append("wallTime", entry.wall())
                .append("ns", new Document("db", entry.db()).append("coll", entry.coll()));
            switch (entry.op()) {
                case "insert", "replace" -> event
                    .append("documentKey", new Document("_id", entry.id()))
                    .append("fullDocument", entry.document());
                case "update" -> {
                    event.append("documentKey", new Document("_id", entry.id()))
                        .append("updateDescription", entry.updateDescription());
                    if (!fullDocument.equals("default") && !fullDocument.equals("off")) {
                        event.append("fullDocument", log.lookup(entry.db(), entry.coll(), entry.id()));
                    }
                }
                case "delete" -> event.append("documentKey", new Document("_id", entry.id()));
                case "drop" -> {
                    if (coll != null) {
                        Document invalidate = new Document("_id", resumeToken(entry.ts()))
                            .append("operationType", "invalidate")
                            .append("clusterTime", new BsonTimestamp(entry.ts()))
                            .append("wallTime", entry.wall());
                        return Stream.of(event, invalidate);
                    }
                }
                default -> {
                }
            }
            return Stream.of(event);
        }
    }

    // ------------------------------------------------------------------------------------------------ awaitData

    /** Version counter plus one-shot waiters, woken after every change-log append. */
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

        /** Runs {@code waiter} once, as soon as the version differs from {@code seen} (maybe right away). */
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
     * {@link MongoDatabaseHandler} that answers OP_MSG requests itself: an empty change-stream getMore reply is
     * held until the change log grows or the await time passes (everything for one request runs on the channel's
     * event loop; nothing blocks), and command errors the client receives anyway (duplicate key, ...) are not
     * logged. OP_QUERY (legacy) requests go to the library's handler.
     */
    static final class AwaitDataHandler extends MongoDatabaseHandler {
        private static final org.slf4j.Logger LOG = org.slf4j.LoggerFactory.getLogger(MongoServerMain.class);

        private final AcMemoryBackend backend;
        private final AtomicInteger responseIds = new AtomicInteger(1 << 30);

        AwaitDataHandler(AcMemoryBackend backend, ChannelGroup clients) {
            super(backend, clients);
            this.backend = backend;
        }

        @Override
        protected void channelRead0(ChannelHandlerContext ctx, ClientRequest request) {
            if (request instanceof MongoMessage message) {
                long awaitMs = changeStreamGetMoreAwaitMs(message.getDocument());
                long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(Math.max(0, awaitMs));
                new PendingRequest(ctx, message, deadline).attempt();
                return;
            }
            super.channelRead0(ctx, request);
        }

        /** -1 unless this is a getMore on a change-stream cursor; else how long to wait for data. */
        private long changeStreamGetMoreAwaitMs(Document command) {
            if (command.isEmpty()) {
                return -1;
            }
            String name = command.keySet().iterator().next();
            if (!name.equalsIgnoreCase("getMore") || !(command.get(name) instanceof Number cursorId)
                || backend.changeStreamCursor(cursorId.longValue()) == null) {
                return -1;
            }
            Object maxTimeMs = command.get("maxTimeMS");
            if (maxTimeMs instanceof Number n && n.longValue() > 0) {
                return n.longValue();
            }
            return DEFAULT_AWAIT_MS;
        }

        private final class PendingRequest {
            private final ChannelHandlerContext ctx;
            private final MongoMessage message;
            private final long deadlineNanos;
            private int generation;
            private Runnable waiter;
            private ScheduledFuture<?> timer;

            PendingRequest(ChannelHandlerContext ctx, MongoMessage message, long deadlineNanos) {
                this.ctx = ctx;
                this.message = message;
                this.deadlineNanos = deadlineNanos;
            }

            /** Runs on ctx.executor(). */
            void attempt() {
                if (!ctx.channel().isActive()) {
                    return;
                }
                OplogSignal signal = backend.signal();
                long seen = signal.version();
                Document response;
                try {
                    response = backend.handleMessage(message);
                } catch (MongoServerException e) {
                    LOG.debug("command failed: {}", message.getDocument(), e);
                    reply(errorResponse(e));
                    return;
                } catch (RuntimeException e) {
                    LOG.error("unexpected error handling {}", message.getDocument(), e);
                    reply(errorResponse(new MongoServerException("Unknown error: " + e.getMessage(), e)));
                    return;
                }
                long remainingNanos = deadlineNanos - System.nanoTime();
                if (remainingNanos <= 0 || !isEmptyLiveBatch(response)) {
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
                backend.signal().cancel(waiter);
                timer.cancel(false);
                attempt();
            }

            private void reply(Document document) {
                MessageHeader header = new MessageHeader(responseIds.incrementAndGet(),
                    message.getHeader().getRequestID());
                ctx.channel().writeAndFlush(new MongoMessage(message.getChannel(), header, document));
            }
        }

        private static boolean isEmptyLiveBatch(Document response) {
            if (!(response.get("cursor") instanceof Document cursor)) {
                return false;
            }
            return cursor.get("id") instanceof Number id && id.longValue() != 0
                && cursor.get("nextBatch") instanceof List<?> batch && batch.isEmpty();
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
