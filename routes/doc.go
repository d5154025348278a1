// Package routes owns Warren's view of routed prefixes: parsing and
// validating the CIDR prefixes people type, the destination guard (one
// table of addresses no connector ever serves, checked per address by
// connectors and per prefix by the coordinator's route validation), the
// immutable longest-prefix-match table
// that maps a destination to the connector serving it, the diff between
// two prefix sets that OS route reconciliation applies, and the prefix
// arithmetic every other package shares (canonical order and form,
// containment, halves): there is no second copy of it elsewhere.
//
// It is pure: values in, values out. It performs no I/O, starts no goroutines
// and logs nothing. It must not import any other Warren package.
package routes
