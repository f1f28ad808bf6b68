import type { IndexDb, IndexSchema } from '../../src/db/index.js'

/** Rows in `table` of the index (`count(*)`; on PostgreSQL a bigint, returned as a number). */
export async function countRows(db: IndexDb, table: keyof IndexSchema): Promise<number> {
  const row = await db
    .selectFrom(table)
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .executeTakeFirstOrThrow()
  return Number(row.n)
}
