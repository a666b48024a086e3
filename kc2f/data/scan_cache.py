"""The `ScanCache`: the pre-training scan's per-file results, kept across runs and resumes.

The scan (`kc2f.data.bad_audio.validate_audio`) decodes every file once to
find the unusable ones and to read each file's rate and length. At AudioSet
scale (2 M ten-second clips) that is hours on every start and every resume,
for files that did not change. This cache keeps each decoded file's result in
one SQLite file, `$KC2F_CACHE_DIR/scan.sqlite`, keyed by the file's absolute
path, size and modification time (`st_mtime_ns`): a file whose size or
modification time changed is decoded again.

A file modified less than `RACY_SECONDS` before it was scanned is not
trusted (the "racy" case of git's index): a second write within the file
system's timestamp granularity could keep size and time unchanged. Such a
file is simply decoded again on the next scan.

Safe with several processes: SQLite's write-ahead log and a busy timeout
serialise writers, and each scan's results are written in one transaction.
A damaged cache file is reported in one warning naming it, then deleted and
rebuilt; if even that fails, the scan runs without the cache. The cache never
makes a scan fail. `KC2F_SCAN_CACHE=0` switches it off.
"""

import logging
import os
import sqlite3
import time

from kc2f.data.cache_dir import cache_root

logger = logging.getLogger(__name__)

FILE_NAME = "scan.sqlite"
# Bump when the decoder or the meaning of a stored field changes: older entries are dropped.
SCAN_VERSION = "1"
RACY_SECONDS = 2.0
_CHUNK = 500  # SQLite's default limit on host parameters is 999


class ScanCache:
    """Per-file scan results in one SQLite file, keyed by `(absolute path, size, mtime_ns)`.

    Args:
        path: the SQLite file (created with its directory when missing).

    A stored result is the tuple `(status, rate, frames, channels, finite,
    peak, message)` that `validate_audio` classifies; `message` is the text of
    a file that failed to decode (else `None`).
    """

    def __init__(self, path):
        self.path = os.fspath(path)
        self._conn = None
        self._disabled = False
        self._open()

    @classmethod
    def default(cls):
        """The cache in the kc2f cache directory, or `None` when `KC2F_SCAN_CACHE=0`."""
        if os.environ.get("KC2F_SCAN_CACHE", "1").strip().lower() in ("0", "false", "no", "off"):
            return None
        return cls(os.path.join(cache_root(), FILE_NAME))

    @property
    def enabled(self):
        return self._conn is not None

    def lookup(self, keys):
        """`{key: result}` for the `(path, size, mtime_ns)` keys with a trusted stored result."""
        if not self.enabled or not keys:
            return {}
        wanted = {}
        for key in keys:
            wanted[os.path.abspath(key[0])] = key
        found = {}
        names = list(wanted)
        try:
            for begin in range(0, len(names), _CHUNK):
                chunk = names[begin:begin + _CHUNK]
                rows = self._conn.execute(
                    "SELECT path, size, mtime_ns, scanned_ns, status, rate, frames, channels, finite, peak, "
                    f"message FROM files WHERE path IN ({','.join('?' * len(chunk))})", chunk).fetchall()
                for path, size, mtime_ns, scanned_ns, *result in rows:
                    key = wanted[path]
                    if (size, mtime_ns) == (key[1], key[2]) and scanned_ns - mtime_ns > RACY_SECONDS * 1e9:
                        status, rate, frames, channels, finite, peak, message = result
                        found[key] = (status, rate, frames, channels, bool(finite), peak, message)
        except sqlite3.Error as error:
            self._give_up(error)
            return {}
        return found

    def store(self, entries, scanned_ns=None):
        """Stores `{(path, size, mtime_ns): result}` in one transaction.

        Args:
            entries: the results, keyed as `lookup` takes them.
            scanned_ns: when the files' size and time were read (`time.time_ns()`;
                default now). The racy check compares a file's time with it, so
                give the time of the `stat`, not of the end of decoding.
        """
        if not self.enabled or not entries:
            return
        now = time.time_ns() if scanned_ns is None else int(scanned_ns)
        rows = [(os.path.abspath(path), size, mtime_ns, now, int(status), int(rate), int(frames), int(channels),
                 int(bool(finite)), float(peak), message)
                for (path, size, mtime_ns), (status, rate, frames, channels, finite, peak, message)
                in entries.items()]
        try:
            with self._conn:
                self._conn.executemany("INSERT OR REPLACE INTO files VALUES (?,?,?,?,?,?,?,?,?,?,?)", rows)
        except sqlite3.Error as error:
            self._give_up(error)

    def close(self):
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- internals -----------------------------------------------------------

    def _open(self):
        try:
            self._conn = self._connect()
        except sqlite3.DatabaseError as error:
            # Damaged or not a database: say so once, then start it afresh.
            logger.warning("Warning: scan cache %s is unreadable (%s); rebuilding it.", self.path, error)
            self.close()
            for suffix in ("", "-wal", "-shm"):
                try:
                    os.unlink(self.path + suffix)
                except OSError:
                    pass
            try:
                self._conn = self._connect()
            except (sqlite3.Error, OSError) as again:
                self._give_up(again)
        except OSError as error:
            self._give_up(error)

    def _connect(self):
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=60.0, isolation_level=None)
        try:
            try:
                conn.execute("PRAGMA journal_mode=WAL")
            except sqlite3.OperationalError:
                pass  # e.g. a file system without shared memory: rollback journal, still locked
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
            conn.execute("BEGIN IMMEDIATE")
            try:
                # Read under the write lock: a version read before it could be a second process's
                # half-made cache, and dropping `files` then would lose what that process stores next.
                row = conn.execute("SELECT value FROM meta WHERE key='scan_version'").fetchone()
                if row is None or row[0] != SCAN_VERSION:
                    conn.execute("DROP TABLE IF EXISTS files")
                    conn.execute("INSERT OR REPLACE INTO meta VALUES ('scan_version', ?)", (SCAN_VERSION,))
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS files (path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER, "
                    "scanned_ns INTEGER, status INTEGER, rate INTEGER, frames INTEGER, channels INTEGER, "
                    "finite INTEGER, peak REAL, message TEXT)")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            # Reads the whole schema: a damaged file fails here, not in the middle of a scan.
            conn.execute("SELECT count(*) FROM files").fetchone()
        except BaseException:
            conn.close()
            raise
        # In autocommit mode `with conn:` would not open a transaction; writes use explicit ones.
        conn.isolation_level = "DEFERRED"
        return conn

    def _give_up(self, error):
        if not self._disabled:
            logger.warning("Warning: scan cache %s cannot be used (%s); scanning without it.", self.path, error)
        self._disabled = True
        try:
            self.close()
        except sqlite3.Error:
            self._conn = None
