// Package flowlog keeps a connector's flow records until the coordinator
// has them.
//
// What it owns:
//   - the spool: a directory (in the node's state directory) of
//     append-only segment files of JSON lines, one wire.FlowRecord each,
//     written in small batches and fsync'd after each, bounded in records
//     (the oldest segment goes first, counted and logged); a line torn by
//     a crash is skipped when read;
//   - the shipper: it sends the spooled records, oldest first, in batches
//     of at most wire.MaxFlowReport, to a Sink, retrying with backoff, and
//     deletes them from the spool only once the Sink has taken them. A
//     record is thus delivered at least once, always with the same ID (the
//     coordinator stores a record once per connector and ID); the spool is
//     read again at start, so nothing is lost across a coordinator outage
//     or a restart of the connector, as long as the bound holds.
//
// Timing: a denial is written and sent at once; an allowed flow's record
// waits up to Config.BatchDelay (1 s) for others to share its batch.
//
// flowlog is a mechanism: among Warren packages it imports only
// overlay/wire; it must not import roles (connector, client, coord), the
// coordinator client (the Sink is the consumer's interface, implemented by
// whoever the composition root passes in) or cmd.
package flowlog
