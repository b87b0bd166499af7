// Package file is the durable, embedded audit.Store: a directory in the
// C2SP tlog-tiles layout.
//
// # Model
//
// The directory holds tile/<L>/<N>[.p/<W>] hash tiles, tile/entries/<N>[.p/<W>]
// entry bundles (each entry a big-endian uint16 length and its bytes) and
// the signed checkpoint file, so any static file server of the directory
// exposes a standard tiled transparency log. Beside them, talos-journal
// holds the entries appended since the last bundle boundary, and
// talos-lock keeps a second process out.
//
// # Durability
//
// Append writes one journal frame (with a CRC-32C) for the whole batch the
// audit.Log group-commits and makes it durable before returning (fdatasync
// on Linux, fsync elsewhere): an acknowledged entry survives a crash. The
// journal file is extended with zeros ahead of its frames, a chunk at a
// time, so a commit writes into space the file already has and its sync
// flushes the frame without the file's metadata; the zeros read as empty
// frames, so the journal ends after its last frame with entries. Full tiles are written as they complete and made
// durable (fsync of files and directories) before the journal is rotated,
// when it exceeds Config.JournalLimit and on Close. Open replays the journal
// over the durable tiles and cuts a torn last frame. Partial tiles are
// written for each published checkpoint, before it.
//
// # Concurrency
//
// A Store is safe for concurrent use within one process. Open locks the
// directory (flock on Unix).
package file
