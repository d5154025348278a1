package api

import (
	"net/http"

	"github.com/warrennet/warren/overlay/wire"
)

// Auth is the credential an endpoint takes as its bearer. AuthAdmin is checked by New before the handler runs;
// the others are checked by the handler itself, through the coordinator:
// enroll's token is spent in the same transaction that enrolls the node,
// and the control stream must switch on full duplex before it may refuse.
// The authorization matrix test proves every class against a real
// coordinator.
type Auth int8

const (
	// AuthNone: no credential; anyone may call.
	AuthNone Auth = iota
	// AuthEnrollToken: a client or connector token's secret, which must
	// be active (not used if single-use, not expired, not revoked).
	AuthEnrollToken
	// AuthNode: the credential of an enrolled node of either role.
	AuthNode
	// AuthConnector: the credential of an enrolled connector; a client's
	// is refused.
	AuthConnector
	// AuthUserClient: the credential of an enrolled client with a user; a
	// connector's or a userless client's is refused with CodeForbidden.
	AuthUserClient
	// AuthAdmin: an active admin token's secret.
	AuthAdmin
)

func (a Auth) String() string {
	switch a {
	case AuthNone:
		return "none"
	case AuthEnrollToken:
		return "enroll token"
	case AuthNode:
		return "node credential"
	case AuthConnector:
		return "connector credential"
	case AuthUserClient:
		return "client-with-a-user credential"
	case AuthAdmin:
		return "admin token"
	}
	return "unknown"
}

// Endpoint is one route of the API.
type Endpoint struct {
	Method string
	// Pattern is the path as http.ServeMux reads it, {wildcards} and all.
	Pattern string
	Auth    Auth

	handler func(*Server, http.ResponseWriter, *http.Request)
}

// endpoints is every route the API serves: New registers exactly these.
var endpoints = []Endpoint{
	{"GET", wire.PathHealth, AuthNone, (*Server).health},
	{"POST", wire.PathEnroll, AuthEnrollToken, (*Server).enroll},
	{"POST", wire.PathStream, AuthNode, (*Server).stream},
	{"POST", wire.PathFlowReport, AuthConnector, (*Server).reportFlows},
	{"GET", wire.PathFlows, AuthAdmin, (*Server).listFlows},

	{"POST", wire.PathTokens, AuthAdmin, (*Server).createToken},
	{"GET", wire.PathTokens, AuthAdmin, (*Server).listTokens},
	{"DELETE", wire.PathTokens + "/{id}", AuthAdmin, (*Server).revokeToken},
	{"POST", wire.PathRoutes, AuthAdmin, (*Server).addRoute},
	{"GET", wire.PathRoutes, AuthAdmin, (*Server).listRoutes},
	{"DELETE", wire.PathRoutes + "/{addr}/{bits}", AuthAdmin, (*Server).removeRoute},
	{"GET", wire.PathRouteLookup, AuthAdmin, (*Server).lookupRoute},
	{"GET", wire.PathNodes, AuthAdmin, (*Server).listNodes},
	{"DELETE", wire.PathNodes + "/{name}", AuthAdmin, (*Server).removeNode},
	{"GET", wire.PathExport, AuthAdmin, (*Server).export},
	{"GET", wire.PathSplit, AuthAdmin, (*Server).splitPolicy},
	{"POST", wire.PathSplitMode, AuthAdmin, (*Server).splitMode},
	{"POST", wire.PathSplitEntries, AuthAdmin, (*Server).splitAdd},
	{"DELETE", wire.PathSplitEntries + "/{addr}/{bits}", AuthAdmin, (*Server).splitRemove},
	{"POST", wire.PathSplitReset, AuthAdmin, (*Server).splitReset},
	{"GET", wire.PathSplitEffective, AuthAdmin, (*Server).splitEffective},
	{"GET", wire.PathHosts, AuthAdmin, (*Server).listHosts},
	{"POST", wire.PathHosts, AuthAdmin, (*Server).addHost},
	{"DELETE", wire.PathHosts + "/{name}", AuthAdmin, (*Server).removeHost},
	{"GET", wire.PathDNS, AuthAdmin, (*Server).listDNS},
	{"POST", wire.PathDNS, AuthAdmin, (*Server).setDNS},
	{"DELETE", wire.PathDNS + "/{domain}", AuthAdmin, (*Server).removeDNS},
	{"GET", wire.PathPolicy, AuthAdmin, (*Server).getPolicy},
	{"PUT", wire.PathPolicy, AuthAdmin, (*Server).setPolicy},
	{"POST", wire.PathPolicyReset, AuthAdmin, (*Server).resetPolicy},
	{"GET", wire.PathPolicyWhy, AuthAdmin, (*Server).policyWhy},

	{"POST", wire.PathLogin, AuthNone, (*Server).startLogin},
	{"POST", wire.PathLoginWait, AuthNone, (*Server).waitLogin},
	{"GET", wire.PathLoginPage + "/{id}", AuthNone, (*Server).loginPage},
	{"GET", wire.PathOIDCCallback, AuthNone, (*Server).oidcCallback},
	{"POST", wire.PathLogout, AuthNode, (*Server).logout},
	{"GET", wire.PathUsers, AuthAdmin, (*Server).listUsers},
	{"DELETE", wire.PathUsers + "/{email}", AuthAdmin, (*Server).removeUser},
	{"POST", wire.PathSSHCert, AuthUserClient, (*Server).sshCert},
	{"GET", wire.PathSSHCA, AuthAdmin, (*Server).sshCA},
	{"POST", wire.PathSSHCARotate, AuthAdmin, (*Server).rotateSSHCA},
	{"GET", wire.PathSSHCALog, AuthAdmin, (*Server).sshCertLog},
}

// Endpoints returns every route the API serves, in registration order.
func Endpoints() []Endpoint {
	out := make([]Endpoint, len(endpoints))
	copy(out, endpoints)
	for i := range out {
		out[i].handler = nil
	}
	return out
}

// register adds every endpoint to the mux, admin ones behind the admin
// check.
func (s *Server) register() {
	for _, e := range endpoints {
		h := func(w http.ResponseWriter, r *http.Request) { e.handler(s, w, r) }
		if e.Auth == AuthAdmin {
			h = s.admin(h)
		}
		s.mux.HandleFunc(e.Method+" "+e.Pattern, h)
	}
}
