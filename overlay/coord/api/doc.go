// Package api adapts a coord.Coordinator to HTTP: JSON request and response
// bodies, bearer-token authentication, error codes mapped to HTTP statuses,
// the full-duplex newline-delimited JSON control stream, and the pages a
// browser opens to log in (a redirect to the identity provider, one-line
// HTML pages from html/template for the rest). It also
// bounds what a peer without a credential can hold or spend (Limits,
// Server.Configure): read time-outs, body sizes, connections and
// requests per source.
//
// Every endpoint is a row of one table (Endpoints): method, path, the
// credential it takes and its handler; New registers exactly those.
// Handlers are thin: every decision is the coordinator's. api must not
// import the store (it reaches state only through coord) nor any cmd
// package.
package api
