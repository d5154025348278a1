// Package policy owns Warren's access policy: the document an admin writes
// (HuJSON: groups of users, rules saying who may reach which destinations,
// ssh rules saying who may log in to which hosts as which UNIX users, and
// tests the document must pass), its parsing and validation with the line
// of every problem, its compilation against the coordinator's users,
// provider groups (single sign-on), hosts and routes into per-user grants
// and SSH principals, the decision for one flow with the rule that made
// it, the grants each connector enforces (a client's grants cut down to
// the prefixes the connector serves), the fast Matcher a connector asks
// about every new flow, and the dry-run diff of what each user gains and
// loses with a new document.
//
// No document means allow-all (a nil *Compiled), which grants no SSH
// principals. A document means default deny: a flow passes only if a rule
// or an ssh rule (TCP port 22 of its destinations) allows it. Rules are
// order-independent; a decision names the lowest-numbered allowing rule,
// rules before ssh rules (wire.RuleName: "rule 3", "ssh rule 1").
//
// It is pure: values in, values out. It performs no I/O, starts no
// goroutines and logs nothing. Among Warren packages it may import only
// routes and overlay/wire; beyond the standard library only hujson and
// bart; and it must not import os, net, net/http, log, log/slog or
// database/sql.
package policy
