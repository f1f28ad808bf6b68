/**
 * GENERATED CODE - DO NOT MODIFY
 */
import {
  type LexiconDoc,
  Lexicons,
  ValidationError,
  type ValidationResult,
} from '@atproto/lexicon'
import { type $Typed, is$typed, maybe$typed } from './util.js'

export const schemaDict = {
  ComputerAestheticActorGetProfile: {
    lexicon: 1,
    id: 'computer.aesthetic.actor.getProfile',
    defs: {
      main: {
        type: 'query',
        description:
          "An actor's AC profile: handle, item counts per kind and latest mood.",
        parameters: {
          type: 'params',
          required: ['actor'],
          properties: {
            actor: {
              type: 'string',
              format: 'at-identifier',
              description: 'Handle or DID.',
            },
          },
        },
        output: {
          encoding: 'application/json',
          schema: {
            type: 'ref',
            ref: 'lex:computer.aesthetic.actor.getProfile#profileView',
          },
        },
        errors: [
          {
            name: 'ActorNotFound',
            description: 'No indexed actor has this handle or DID.',
          },
        ],
      },
      profileView: {
        type: 'object',
        required: ['did', 'counts'],
        properties: {
          did: {
            type: 'string',
            format: 'did',
          },
          handle: {
            type: 'string',
            format: 'handle',
          },
          counts: {
            type: 'ref',
            ref: 'lex:computer.aesthetic.actor.getProfile#counts',
          },
          latestMood: {
            type: 'ref',
            ref: 'lex:computer.aesthetic.media.defs#itemView',
          },
        },
      },
      counts: {
        type: 'object',
        required: [
          'painting',
          'mood',
          'piece',
          'kidlisp',
          'tape',
          'news',
          'paper',
        ],
        properties: {
          painting: {
            type: 'integer',
            minimum: 0,
          },
          mood: {
            type: 'integer',
            minimum: 0,
          },
          piece: {
            type: 'integer',
            minimum: 0,
          },
          kidlisp: {
            type: 'integer',
            minimum: 0,
          },
          tape: {
            type: 'integer',
            minimum: 0,
          },
          news: {
            type: 'integer',
            minimum: 0,
          },
          paper: {
            type: 'integer',
            minimum: 0,
          },
        },
      },
    },
  },
  ComputerAestheticKidlisp: {
    lexicon: 1,
    id: 'computer.aesthetic.kidlisp',
    defs: {
      main: {
        type: 'record',
        description:
          "A KidLisp program, mirrored from AC's `kidlisp` collection.",
        key: 'tid',
        record: {
          type: 'object',
          required: ['source', 'code', 'when', 'ref'],
          properties: {
            source: {
              type: 'string',
              maxLength: 200000,
              maxGraphemes: 50000,
            },
            code: {
              type: 'string',
              maxLength: 10,
              description: "Short code without '$'; case-sensitive.",
            },
            acUrl: {
              type: 'string',
              format: 'uri',
              maxLength: 512,
            },
            when: {
              type: 'string',
              format: 'datetime',
            },
            ref: {
              type: 'string',
              maxLength: 24,
            },
          },
        },
      },
    },
  },
  ComputerAestheticMediaDefs: {
    lexicon: 1,
    id: 'computer.aesthetic.media.defs',
    defs: {
      kind: {
        type: 'string',
        description:
          'The kind of an AC item: the last segment of its record collection.',
        knownValues: [
          'painting',
          'mood',
          'piece',
          'kidlisp',
          'tape',
          'news',
          'paper',
        ],
      },
      authorView: {
        type: 'object',
        required: ['did'],
        properties: {
          did: {
            type: 'string',
            format: 'did',
          },
          handle: {
            type: 'string',
            format: 'handle',
            description:
              'Absent when the handle is unknown or does not verify.',
          },
        },
      },
      itemView: {
        type: 'object',
        description:
          "One AC item as served by the AppView. Which optional fields appear depends on `kind` (see the project's design: painting has code, slug, acUrl, imageUrl, recordingUrl?, thumb?; mood has mood; piece has slug; kidlisp has code, source, acUrl; tape has code, slug, acUrl, video?, thumb?; news has headline, body?, link?, acUrl?; paper has title, slug, pdfUrl?, languages?, revisions?). URLs a record carries (imageUrl, recordingUrl) appear only when https on AC's or the AppView's configured origins.",
        required: ['uri', 'cid', 'kind', 'author', 'when', 'indexedAt'],
        properties: {
          uri: {
            type: 'string',
            format: 'at-uri',
          },
          cid: {
            type: 'string',
            format: 'cid',
          },
          kind: {
            type: 'ref',
            ref: 'lex:computer.aesthetic.media.defs#kind',
          },
          author: {
            type: 'ref',
            ref: 'lex:computer.aesthetic.media.defs#authorView',
          },
          when: {
            type: 'string',
            format: 'datetime',
          },
          indexedAt: {
            type: 'string',
            format: 'datetime',
          },
          code: {
            type: 'string',
            maxLength: 10,
            description: 'Short code without its prefix (#, $ or !).',
          },
          slug: {
            type: 'string',
          },
          acUrl: {
            type: 'string',
            format: 'uri',
          },
          imageUrl: {
            type: 'string',
            format: 'uri',
          },
          recordingUrl: {
            type: 'string',
            format: 'uri',
          },
          thumb: {
            type: 'string',
            format: 'uri',
            description: 'URL of the thumbnail blob.',
          },
          mood: {
            type: 'string',
          },
          source: {
            type: 'string',
          },
          video: {
            type: 'string',
            format: 'uri',
            description: 'URL of the video blob.',
          },
          headline: {
            type: 'string',
            description: "news: the post's headline.",
          },
          body: {
            type: 'string',
            description: "news: the post's text, if any.",
          },
          link: {
            type: 'string',
            format: 'uri',
            description: 'news: the https URL the post links, if any.',
          },
          title: {
            type: 'string',
            description: 'paper: its title.',
          },
          pdfUrl: {
            type: 'string',
            format: 'uri',
            description: "paper: its PDF, on AC's origins.",
          },
          languages: {
            type: 'array',
            items: {
              type: 'string',
              format: 'language',
            },
            description: 'paper: the languages its PDF exists in.',
          },
          revisions: {
            type: 'integer',
            minimum: 1,
            description: 'paper: how often it was revised.',
          },
          truncated: {
            type: 'boolean',
            description:
              'Present and true when a long text (KidLisp `source`, `mood`, news `body`) was cut to keep a feed page small; `resolveCode` and the record itself hold it whole.',
          },
        },
      },
      feedOutput: {
        type: 'object',
        required: ['items'],
        properties: {
          items: {
            type: 'array',
            items: {
              type: 'ref',
              ref: 'lex:computer.aesthetic.media.defs#itemView',
            },
          },
          cursor: {
            type: 'string',
            description:
              'Opaque; pass back to get the next page. Absent on the last page.',
          },
        },
      },
    },
  },
  ComputerAestheticMediaGetAuthorFeed: {
    lexicon: 1,
    id: 'computer.aesthetic.media.getAuthorFeed',
    defs: {
      main: {
        type: 'query',
        description:
          "One author's AC items, newest `when` first (ties broken by uri, descending).",
        parameters: {
          type: 'params',
          required: ['actor'],
          properties: {
            actor: {
              type: 'string',
              format: 'at-identifier',
              description: 'Handle or DID.',
            },
            kind: {
              type: 'string',
              knownValues: [
                'painting',
                'mood',
                'piece',
                'kidlisp',
                'tape',
                'news',
                'paper',
              ],
            },
            limit: {
              type: 'integer',
              minimum: 1,
              maximum: 100,
              default: 50,
            },
            cursor: {
              type: 'string',
              maxLength: 512,
            },
          },
        },
        output: {
          encoding: 'application/json',
          schema: {
            type: 'ref',
            ref: 'lex:computer.aesthetic.media.defs#feedOutput',
          },
        },
        errors: [
          {
            name: 'ActorNotFound',
            description: 'No indexed actor has this handle or DID.',
          },
          {
            name: 'InvalidCursor',
            description: 'The cursor was not produced by this method.',
          },
        ],
      },
    },
  },
  ComputerAestheticMediaGetFeed: {
    lexicon: 1,
    id: 'computer.aesthetic.media.getFeed',
    defs: {
      main: {
        type: 'query',
        description:
          'All indexed AC items, newest `when` first (ties broken by uri, descending).',
        parameters: {
          type: 'params',
          properties: {
            kind: {
              type: 'string',
              knownValues: [
                'painting',
                'mood',
                'piece',
                'kidlisp',
                'tape',
                'news',
                'paper',
              ],
              description: 'Only this kind; all kinds when absent.',
            },
            limit: {
              type: 'integer',
              minimum: 1,
              maximum: 100,
              default: 50,
            },
            cursor: {
              type: 'string',
              maxLength: 512,
            },
          },
        },
        output: {
          encoding: 'application/json',
          schema: {
            type: 'ref',
            ref: 'lex:computer.aesthetic.media.defs#feedOutput',
          },
        },
        errors: [
          {
            name: 'InvalidCursor',
            description: 'The cursor was not produced by this method.',
          },
        ],
      },
    },
  },
  ComputerAestheticMediaResolveCode: {
    lexicon: 1,
    id: 'computer.aesthetic.media.resolveCode',
    defs: {
      main: {
        type: 'query',
        description:
          "Resolve an AC short code: '#code' (painting), '$code' (KidLisp) or '!code' (tape). Codes are case-sensitive. Only records from repos on the trusted PDS(es) can own a code; if two claim it, the earliest `when` wins.",
        parameters: {
          type: 'params',
          required: ['code'],
          properties: {
            code: {
              type: 'string',
              maxLength: 11,
              description: "Prefix plus 1-10 code characters, e.g. '#WDv'.",
            },
          },
        },
        output: {
          encoding: 'application/json',
          schema: {
            type: 'object',
            required: ['item'],
            properties: {
              item: {
                type: 'ref',
                ref: 'lex:computer.aesthetic.media.defs#itemView',
              },
            },
          },
        },
        errors: [
          {
            name: 'InvalidCode',
            description:
              "The code is not a '#', '$' or '!' prefix followed by 1-10 letters or digits.",
          },
          {
            name: 'NotFound',
            description: 'No trusted record holds this code.',
          },
        ],
      },
    },
  },
  ComputerAestheticMood: {
    lexicon: 1,
    id: 'computer.aesthetic.mood',
    defs: {
      main: {
        type: 'record',
        description:
          "A mood posted on Aesthetic Computer, mirrored from AC's `moods` collection.",
        key: 'tid',
        record: {
          type: 'object',
          required: ['mood', 'when', 'ref'],
          properties: {
            mood: {
              type: 'string',
              maxLength: 20000,
              maxGraphemes: 5000,
            },
            when: {
              type: 'string',
              format: 'datetime',
            },
            ref: {
              type: 'string',
              maxLength: 24,
            },
          },
        },
      },
    },
  },
  ComputerAestheticNews: {
    lexicon: 1,
    id: 'computer.aesthetic.news',
    defs: {
      main: {
        type: 'record',
        description:
          "A post on AC's news board (news.aesthetic.computer), written to the poster's own repo; mirrored from AC's `news-posts` collection.",
        key: 'tid',
        record: {
          type: 'object',
          required: ['headline', 'when'],
          properties: {
            headline: {
              type: 'string',
              maxLength: 1200,
              maxGraphemes: 300,
            },
            body: {
              type: 'string',
              maxLength: 40000,
              maxGraphemes: 10000,
            },
            link: {
              type: 'string',
              format: 'uri',
              maxLength: 2048,
            },
            tags: {
              type: 'array',
              maxLength: 10,
              items: {
                type: 'string',
                maxLength: 256,
                maxGraphemes: 64,
              },
            },
            acUrl: {
              type: 'string',
              format: 'uri',
              maxLength: 512,
              description:
                "The post's permalink on news.aesthetic.computer (written by ac-appview; AC's own scripts leave it out).",
            },
            when: {
              type: 'string',
              format: 'datetime',
            },
            ref: {
              type: 'string',
              maxLength: 24,
            },
          },
        },
      },
    },
  },
  ComputerAestheticPainting: {
    lexicon: 1,
    id: 'computer.aesthetic.painting',
    defs: {
      main: {
        type: 'record',
        description:
          "A painting made on Aesthetic Computer, mirrored from AC's `paintings` collection. Compatible with the schema AC publishes; `acUrl` is declared because AC writes it.",
        key: 'tid',
        record: {
          type: 'object',
          required: ['slug', 'code', 'imageUrl', 'when', 'ref'],
          properties: {
            slug: {
              type: 'string',
              maxLength: 128,
              description:
                "AC's slug: a timestamp for users, a nanoid for guests, or imageSlug:recordingSlug.",
            },
            code: {
              type: 'string',
              maxLength: 10,
              description: "Short code without '#'; case-sensitive.",
            },
            imageUrl: {
              type: 'string',
              format: 'uri',
              maxLength: 512,
            },
            thumbnail: {
              type: 'blob',
              accept: ['image/png', 'image/jpeg'],
              maxSize: 1048576,
              description: '512x512 contain-on-black thumbnail.',
            },
            recordingUrl: {
              type: 'string',
              format: 'uri',
              maxLength: 512,
            },
            acUrl: {
              type: 'string',
              format: 'uri',
              maxLength: 512,
            },
            when: {
              type: 'string',
              format: 'datetime',
            },
            ref: {
              type: 'string',
              maxLength: 24,
              description:
                'MongoDB ObjectId of the source document, 24 hex characters.',
            },
          },
        },
      },
    },
  },
  ComputerAestheticPaper: {
    lexicon: 1,
    id: 'computer.aesthetic.paper',
    defs: {
      main: {
        type: 'record',
        description:
          "A paper of AC's (papers.aesthetic.computer), written by AC's own scripts to its author's repo; not mirrored from MongoDB.",
        key: 'tid',
        record: {
          type: 'object',
          required: ['title', 'slug', 'pdfUrl', 'when'],
          properties: {
            title: {
              type: 'string',
              maxLength: 1200,
              maxGraphemes: 300,
            },
            slug: {
              type: 'string',
              maxLength: 128,
            },
            pdfUrl: {
              type: 'string',
              format: 'uri',
              maxLength: 512,
            },
            languages: {
              type: 'array',
              maxLength: 32,
              items: {
                type: 'string',
                format: 'language',
              },
              description:
                "Languages the paper's PDF exists in (`<slug>-<lang>.pdf` besides English).",
            },
            revisions: {
              type: 'integer',
              minimum: 1,
            },
            when: {
              type: 'string',
              format: 'datetime',
            },
            ref: {
              type: 'string',
              maxLength: 128,
              description:
                "AC's key for the paper (its folder, e.g. `arxiv-ac`).",
            },
          },
        },
      },
    },
  },
  ComputerAestheticPiece: {
    lexicon: 1,
    id: 'computer.aesthetic.piece',
    defs: {
      main: {
        type: 'record',
        description:
          "A piece (a JavaScript program) published on Aesthetic Computer, mirrored from AC's `pieces` collection. It has no code field.",
        key: 'tid',
        record: {
          type: 'object',
          required: ['slug', 'when', 'ref'],
          properties: {
            slug: {
              type: 'string',
              maxLength: 100,
            },
            when: {
              type: 'string',
              format: 'datetime',
            },
            ref: {
              type: 'string',
              maxLength: 24,
            },
          },
        },
      },
    },
  },
  ComputerAestheticTape: {
    lexicon: 1,
    id: 'computer.aesthetic.tape',
    defs: {
      main: {
        type: 'record',
        description:
          "A tape (a recorded AC session) as an MP4 video, mirrored from AC's `tapes` collection.",
        key: 'tid',
        record: {
          type: 'object',
          required: ['slug', 'code', 'when', 'video'],
          properties: {
            slug: {
              type: 'string',
              maxLength: 128,
            },
            code: {
              type: 'string',
              maxLength: 10,
              description: "Short code without '!'; case-sensitive.",
            },
            video: {
              type: 'blob',
              accept: ['video/mp4'],
              maxSize: 52428800,
            },
            thumbnail: {
              type: 'blob',
              accept: ['image/jpeg', 'image/png'],
              maxSize: 1048576,
            },
            zipUrl: {
              type: 'string',
              format: 'uri',
              maxLength: 512,
            },
            acUrl: {
              type: 'string',
              format: 'uri',
              maxLength: 512,
            },
            when: {
              type: 'string',
              format: 'datetime',
            },
            ref: {
              type: 'string',
              maxLength: 24,
            },
          },
        },
      },
    },
  },
} as const satisfies Record<string, LexiconDoc>
export const schemas = Object.values(schemaDict) satisfies LexiconDoc[]
export const lexicons: Lexicons = new Lexicons(schemas)

export function validate<T extends { $type: string }>(
  v: unknown,
  id: string,
  hash: string,
  requiredType: true,
): ValidationResult<T>
export function validate<T extends { $type?: string }>(
  v: unknown,
  id: string,
  hash: string,
  requiredType?: false,
): ValidationResult<T>
export function validate(
  v: unknown,
  id: string,
  hash: string,
  requiredType?: boolean,
): ValidationResult {
  return (requiredType ? is$typed : maybe$typed)(v, id, hash)
    ? lexicons.validate(`${id}#${hash}`, v)
    : {
        success: false,
        error: new ValidationError(
          `Must be an object with "${hash === 'main' ? id : `${id}#${hash}`}" $type property`,
        ),
      }
}

export const ids = {
  ComputerAestheticActorGetProfile: 'computer.aesthetic.actor.getProfile',
  ComputerAestheticKidlisp: 'computer.aesthetic.kidlisp',
  ComputerAestheticMediaDefs: 'computer.aesthetic.media.defs',
  ComputerAestheticMediaGetAuthorFeed: 'computer.aesthetic.media.getAuthorFeed',
  ComputerAestheticMediaGetFeed: 'computer.aesthetic.media.getFeed',
  ComputerAestheticMediaResolveCode: 'computer.aesthetic.media.resolveCode',
  ComputerAestheticMood: 'computer.aesthetic.mood',
  ComputerAestheticNews: 'computer.aesthetic.news',
  ComputerAestheticPainting: 'computer.aesthetic.painting',
  ComputerAestheticPaper: 'computer.aesthetic.paper',
  ComputerAestheticPiece: 'computer.aesthetic.piece',
  ComputerAestheticTape: 'computer.aesthetic.tape',
} as const
