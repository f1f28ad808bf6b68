import type { Migration } from 'kysely/migration'
import * as m001 from './001_init.js'
import * as m002 from './002_ingest.js'
import * as m003 from './003_appview.js'
import * as m004 from './004_posts.js'
import * as m005 from './005_hostile.js'
import * as m006 from './006_version.js'
import * as m007 from './007_views.js'

/** Every index migration, in order. Add a numbered file and list it here. */
export const migrations: Record<string, Migration> = {
  '001_init': m001,
  '002_ingest': m002,
  '003_appview': m003,
  '004_posts': m004,
  '005_hostile': m005,
  '006_version': m006,
  '007_views': m007,
}
