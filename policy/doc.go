// Package policy owns Warren's access policy: the document an admin writes
// (HuJSON: groups of users, rules saying who may reach which destinations,
// and tests the document must pass), its parsing and validation with the
// line of every problem, its compilation against the coordinator's users,
// hosts and routes into per-user grants, the decision for one flow with
// the rule that made it, the grants each connector enforces (a client's
// grants cut down to the prefixes the connector serves), the fast Matcher
// a connector asks about every new flow, and the dry-run diff of what each
// user gains and loses with a new document.
//
// No document means allow-all (a nil *Compiled). A document means default
// deny: a flow passes only if a rule allows it. Rules are order-independent;
// a decision names the lowest-numbered allowing rule.
//
// It is pure: values in, values out. It performs no I/O, starts no
// goroutines and logs nothing. Among Warren packages it may import only
// routes and overlay/wire; beyond the standard library only hujson and
// bart; and it must not import os, net, net/http, log, log/slog or
// database/sql.
package policy
