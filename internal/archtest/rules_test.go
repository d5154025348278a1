package archtest

import "slices"

// The dependency rules of docs/ARCHITECTURE.md. Dependencies point down:
// cmd → roles → mechanisms → pure, never the other way.
//
// Patterns: "./x" is the Warren package x, "./x/..." is x and every package
// below it, "./..." is every Warren package; anything else is a full import
// path ("net/http", "gvisor.dev/gvisor/..."). A rule checks the module's
// non-test packages that match from and not except; each may not import
// (direct) or depend on (transitive) a package that matches forbid and not
// allow. A transitive violation is reported with its import chain.
//
// Every Warren pattern must match a package that exists today or be listed
// in future, so a typo cannot turn a rule off (TestRulePatterns).

// The layers.
var (
	pure = []string{"./routes/...", "./split/...", "./overlay/wire/...", "./policy/..."}

	mechanisms = []string{
		"./overlay/wgdev/...",
		"./overlay/relay/...",
		"./overlay/coordclient/...",
		"./overlay/agent/...",
		"./overlay/ctl/...",
		"./overlay/nodestate/...",
		"./overlay/atomicfile/...",
		"./overlay/procs/...",
		"./overlay/flowtrack/...",
		"./overlay/flowlog/...",
		"./overlay/proxy/...",
		"./overlay/dnsres/...",
		"./netstack/...",
		"./platform/...",
		"./service/...",
	}

	roles = []string{"./overlay/client/...", "./overlay/connector/...", "./overlay/coord/..."}
)

// Groups of things some packages must never pull in.
var (
	// dataPlane needs root, a TUN or a userspace TCP/IP stack.
	dataPlane = []string{
		"golang.zx2c4.com/wireguard/...",
		"gvisor.dev/gvisor/...",
		"github.com/vishvananda/netlink/...",
	}

	// warrenDataPlane are Warren's own packages that carry packets: a
	// WireGuard device, the userspace stack, the TUN and OS routes. On a
	// system where platform needs no netlink, only this list catches a
	// dependency on it.
	warrenDataPlane = []string{"./overlay/wgdev/...", "./netstack/...", "./platform/..."}

	// effects are the standard packages that do I/O or log.
	effects = []string{"os/...", "net", "net/http/...", "log", "log/slog", "database/sql/..."}
)

// future lists the Warren patterns the rules name before the package
// exists. Remove an entry once its package lands.
var future = map[string]string{}

type reach int

const (
	direct     reach = iota + 1 // the package's own import declarations
	transitive                  // everything it links in
)

type rule struct {
	from, except  []string
	forbid, allow []string
	how           reach
	why           string
}

var rules = []rule{
	// Pure packages: values in, values out.
	{
		from: []string{"./routes/..."}, forbid: []string{"./..."}, allow: []string{"./routes/..."}, how: transitive,
		why: "routes is pure and sits at the bottom: it imports no other Warren package",
	},
	{
		from: []string{"./split/..."}, forbid: []string{"./..."}, allow: []string{"./split/...", "./routes/..."}, how: transitive,
		why: "split is pure: among Warren packages it may import only routes",
	},
	{
		from: []string{"./overlay/wire/..."}, forbid: []string{"./..."}, allow: []string{"./overlay/wire/...", "./routes/..."}, how: transitive,
		why: "wire is the protocol's values: among Warren packages it may import only routes",
	},
	{
		from: []string{"./policy/..."}, forbid: []string{"./..."}, allow: []string{"./policy/...", "./routes/...", "./overlay/wire/..."}, how: transitive,
		why: "policy is pure: among Warren packages it may import only routes and wire",
	},
	{
		from: pure, forbid: effects, how: direct,
		why: "pure packages do no I/O and log nothing",
	},

	// The coordinator: api → coord → store.
	{
		from: []string{"./overlay/coord/sso/..."}, forbid: []string{"./..."}, allow: []string{"./overlay/coord/sso/...", "./overlay/wire/...", "./routes/..."}, how: transitive,
		why: "sso speaks OpenID Connect to the provider and knows nothing of nodes, logins or the store: among Warren packages it imports only wire",
	},
	{
		from: []string{"./overlay/coord/store/..."}, forbid: []string{"./..."}, allow: []string{"./overlay/coord/store/...", "./overlay/wire/..."}, how: direct,
		why: "the store knows rows, not the domain: among Warren packages it imports only wire",
	},
	{
		from: []string{"./overlay/coord/api/..."}, forbid: []string{"./overlay/coord/store/..."}, how: direct,
		why: "the API layer is a thin adapter that reaches state only through coord",
	},
	{
		from: []string{"./overlay/coord/..."}, except: []string{"./overlay/coord/api/..."}, forbid: []string{"./overlay/coord/api/..."}, how: transitive,
		why: "coord knows nothing of HTTP: api depends on coord, not the reverse",
	},

	// Test support.
	{
		from: []string{"./..."}, except: []string{"./test/coordtest/..."}, forbid: []string{"./test/coordtest/..."}, how: transitive,
		why: "coordtest runs a whole coordinator with faults for tests: only _test.go files may import it, so no binary links it",
	},
	{
		from: []string{"./..."}, except: []string{"./test/oidctest/..."}, forbid: []string{"./test/oidctest/...", "github.com/zitadel/oidc/v3/..."}, how: transitive,
		why: "oidctest runs an OpenID Provider (zitadel's OP) for tests: only _test.go files may import it, and no binary links an identity provider",
	},

	// Layers.
	{
		from: []string{"./..."}, except: []string{"./cmd/..."}, forbid: []string{"./cmd/..."}, how: transitive,
		why: "cmd is the top: only cmd/... may import cmd/...",
	},
	{
		from: mechanisms, forbid: roles, how: transitive,
		why: "mechanisms serve the roles and must not reach up into them (nor into cmd, see above)",
	},
	{
		from: []string{"./overlay/client/..."}, forbid: []string{"./overlay/connector/...", "./overlay/coord/..."}, how: transitive,
		why: "roles meet only over the protocol: the client reaches connectors and the coordinator through wire, coordclient and relay, never their code",
	},
	{
		from: []string{"./overlay/connector/..."}, forbid: []string{"./overlay/client/...", "./overlay/coord/..."}, how: transitive,
		why: "roles meet only over the protocol: the connector reaches clients and the coordinator through wire, coordclient and relay, never their code",
	},
	{
		from: []string{"./overlay/coord/..."}, forbid: []string{"./overlay/client/...", "./overlay/connector/..."}, how: transitive,
		why: "roles meet only over the protocol: the coordinator knows nodes by the netmaps it sends them, never by their code",
	},

	// Who may pull in the data plane.
	{
		from: []string{"./overlay/coordclient/...", "./overlay/nodestate/...", "./overlay/agent/..."}, forbid: dataPlane, how: transitive,
		why: "the control-plane client, node state and agent serve every role (and the CLI) and need no TUN, stack or netlink",
	},
	{
		from: []string{"./overlay/connector/..."}, forbid: []string{"./platform/...", "github.com/vishvananda/netlink/..."}, how: transitive,
		why: "the connector runs without root on a userspace stack: no OS integration",
	},
	{
		from: []string{"./overlay/coord/...", "./cmd/warren/cli/..."}, forbid: slices.Concat(dataPlane, warrenDataPlane), how: transitive,
		why: "the coordinator and the CLI are control plane: no WireGuard device, stack, TUN or OS routes (the relay beside the coordinator is wired in by cmd/warren/run)",
	},

	// Each mechanism owns one thing.
	{
		from: []string{"./overlay/wgdev/...", "./overlay/relay/..."}, forbid: []string{"./...", "gvisor.dev/gvisor/...", "github.com/vishvananda/netlink/..."},
		allow: []string{"./overlay/wgdev/...", "./overlay/relay/...", "./overlay/wire/...", "./routes/..."}, how: transitive,
		why: "wgdev and relay speak WireGuard over a Bind: no stack, no OS routes, and among Warren packages only wire",
	},
	{
		from: []string{"./netstack/..."}, forbid: []string{"./...", "github.com/vishvananda/netlink/..."}, allow: []string{"./netstack/..."}, how: transitive,
		why: "netstack terminates flows and applies no policy: it imports no other Warren package",
	},
	{
		from: []string{"./platform/..."}, forbid: []string{"./..."}, allow: []string{"./platform/...", "./routes/..."}, how: transitive,
		why: "platform is OS integration only: among Warren packages it imports only routes",
	},
	{
		from: []string{"./overlay/proxy/..."}, forbid: []string{"./..."}, allow: []string{"./overlay/proxy/...", "./netstack/..."}, how: transitive,
		why: "the local proxies reach everything through the Dialer their consumer passes in: among Warren packages they import only netstack (its byte pipe)",
	},
	{
		from: []string{"./overlay/dnsres/..."}, forbid: append([]string{"./..."}, dataPlane...), allow: []string{"./overlay/dnsres/..."}, how: transitive,
		why: "dnsres is the laptop's resolver and imports no other Warren package nor a data plane: it reaches the pushed domains' servers through the Dialer its consumer passes in",
	},
	{
		from: []string{"./overlay/coordclient/..."}, forbid: []string{"./..."}, allow: []string{"./overlay/coordclient/...", "./overlay/wire/...", "./routes/..."}, how: transitive,
		why: "the coordinator client is the API's other end: among Warren packages it imports only wire",
	},
	{
		from: []string{"./overlay/flowlog/..."}, forbid: slices.Concat([]string{"./..."}, dataPlane), allow: []string{"./overlay/flowlog/...", "./overlay/wire/...", "./routes/..."}, how: transitive,
		why: "the flow log is a spool and a shipper to a Sink its consumer passes in: among Warren packages it imports only wire",
	},
	{
		from: []string{"./overlay/nodestate/..."}, forbid: []string{"./..."}, allow: []string{"./overlay/nodestate/...", "./overlay/wire/...", "./overlay/atomicfile/...", "./routes/..."}, how: transitive,
		why: "node state is files: among Warren packages it imports only wire and atomicfile",
	},
	{
		from: []string{"./overlay/coord/sshca/..."}, forbid: []string{"./..."}, allow: []string{"./overlay/coord/sshca/...", "./overlay/wire/...", "./overlay/atomicfile/...", "./routes/..."}, how: transitive,
		why: "the SSH CA is keys and signatures: among Warren packages it imports only wire and atomicfile, never coord, api or the store",
	},
	{
		from: []string{"./dist/..."}, forbid: []string{"./..."}, allow: []string{"./dist/..."}, how: transitive,
		why: "dist is the service files Warren ships: it imports no other Warren package",
	},
	{
		from: []string{"./dist/..."}, forbid: effects, how: direct,
		why: "dist is data, embedded: it does no I/O",
	},
	{
		from: []string{"./service/..."}, forbid: slices.Concat([]string{"./..."}, dataPlane), allow: []string{"./service/...", "./dist/...", "./overlay/atomicfile/..."}, how: transitive,
		why: "service writes dist's files and runs the service manager: among Warren packages it imports only dist and atomicfile, and no data plane (the CLI imports it)",
	},
	{
		from: []string{"./cmd/warren/cli/..."}, forbid: []string{"modernc.org/sqlite/...", "./overlay/coord/store/..."}, how: transitive,
		why: "the CLI parses flags and calls APIs; roles get their concrete parts from cmd/warren/run",
	},
}
