// @ts-check
/**
 * Where unacknowledged commands wait (comments, edits, deletions,
 * resolutions, reactions). An entry is written before its command is first
 * sent and deleted only when its acknowledgement (`comment_ack`, `ack`) or
 * a final error arrives, so a comment typed offline survives a closed tab:
 * the next session for the same key loads it and sends it again with the
 * same `client_msg_id` (the server applies it once).
 *
 * @typedef {import('./types.js').OutboxEntry} OutboxEntry
 * @typedef {import('./types.js').OutboxStore} OutboxStore
 */

/** Keeps entries in memory only (Node, or browsers without IndexedDB). */
export class MemoryOutbox {
  constructor() {
    /** @type {Map<string, OutboxEntry>} */
    this.entries = new Map();
  }
  /** @returns {Promise<OutboxEntry[]>} */
  async load() {
    return [...this.entries.values()].sort((a, b) => a.created - b.created);
  }
  /** @param {OutboxEntry} entry */
  async put(entry) {
    this.entries.set(entry.client_msg_id, entry);
  }
  /** @param {string} id */
  async delete(id) {
    this.entries.delete(id);
  }
}

const DB_NAME = 'vridge-outbox';
const STORE = 'entries';

/**
 * Keeps entries in IndexedDB under `key` (use one key per user and project,
 * e.g. `u3:p7`), so a later page load of the same user and project finds them.
 */
export class IndexedDBOutbox {
  /** @param {string} key @param {IDBFactory} [idb] */
  constructor(key, idb = globalThis.indexedDB) {
    this.key = key;
    this.idb = idb;
    /** @type {Promise<IDBDatabase> | null} */
    this.db = null;
  }

  /** @returns {Promise<IDBDatabase>} */
  open() {
    if (!this.db) {
      this.db = new Promise((resolve, reject) => {
        const req = this.idb.open(DB_NAME, 1);
        req.onupgradeneeded = () => {
          const store = req.result.createObjectStore(STORE, { keyPath: ['key', 'client_msg_id'] });
          store.createIndex('key', 'key');
        };
        req.onsuccess = () => resolve(req.result);
        req.onerror = () => reject(req.error);
      });
    }
    return this.db;
  }

  /**
   * @template T
   * @param {IDBTransactionMode} mode
   * @param {(store: IDBObjectStore) => IDBRequest<T>} op
   * @returns {Promise<T>}
   */
  async run(mode, op) {
    const db = await this.open();
    return new Promise((resolve, reject) => {
      const tx = db.transaction(STORE, mode);
      const req = op(tx.objectStore(STORE));
      tx.oncomplete = () => resolve(req.result);
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error);
    });
  }

  /** @returns {Promise<OutboxEntry[]>} */
  async load() {
    const rows = await this.run('readonly', (s) => s.index('key').getAll(this.key));
    return rows
      .map(({ key: _key, ...entry }) => /** @type {OutboxEntry} */ (entry))
      .sort((a, b) => a.created - b.created);
  }

  /** @param {OutboxEntry} entry */
  async put(entry) {
    await this.run('readwrite', (s) => s.put({ ...entry, key: this.key }));
  }

  /** @param {string} id */
  async delete(id) {
    await this.run('readwrite', (s) => s.delete([this.key, id]));
  }
}

/**
 * IndexedDB when the environment has it, memory otherwise.
 * @param {string} key
 * @returns {OutboxStore}
 */
export function defaultOutbox(key) {
  return typeof globalThis.indexedDB === 'undefined' ? new MemoryOutbox() : new IndexedDBOutbox(key);
}
