import fs from 'node:fs'

/** Linux's clock ticks per second in /proc (USER_HZ), 100 on every common build. */
const TICKS_PER_SECOND = 100

/**
 * CPU seconds (user + system) used so far by this process's live threads, summed by thread name
 * (`MainThread`, a worker's `name`, `WorkerThread` for unnamed workers, `libuv-worker` for
 * libuv's pool, `V8Worker` for V8's helpers), from /proc/self/task. Threads that have exited are
 * not counted. Empty where /proc is not Linux's.
 */
export function threadCpu(): Map<string, number> {
  const byName = new Map<string, number>()
  let tasks: string[]
  try {
    tasks = fs.readdirSync('/proc/self/task')
  } catch {
    return byName
  }
  for (const task of tasks) {
    let stat: string
    try {
      stat = fs.readFileSync(`/proc/self/task/${task}/stat`, 'utf8')
    } catch {
      continue // the thread exited meanwhile
    }
    const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'))
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    const seconds = (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND // utime, stime: fields 14 and 15 of stat
    byName.set(name, (byName.get(name) ?? 0) + seconds)
  }
  return byName
}

/** `after` minus `before`, per thread name, rounded to 0.1 s, largest first. */
export function cpuSince(before: Map<string, number>, after: Map<string, number>): Array<[string, number]> {
  return [...after]
    .map(([name, s]): [string, number] => [name, Math.round(10 * (s - (before.get(name) ?? 0))) / 10])
    .filter(([, s]) => s > 0)
    .sort((a, b) => b[1] - a[1])
}
