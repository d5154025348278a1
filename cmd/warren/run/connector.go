package run

import (
	"context"
	"os"

	"github.com/warrennet/warren/cmd/warren/cli"
	"github.com/warrennet/warren/overlay/connector"
	"github.com/warrennet/warren/overlay/coordclient"
	"github.com/warrennet/warren/overlay/flowlog"
	"github.com/warrennet/warren/overlay/nodestate"
)

// Connector runs the connector until ctx ends.
func Connector(ctx context.Context, o cli.ConnectorOptions) error {
	limitMemory(o.Logger, connectorMemoryLimit)
	paceCollector(o.Logger, connectorGCPercent)
	defer governProcs(ctx, o.Logger)()
	host, _ := os.Hostname()
	c, err := connector.New(ctx, connector.Config{StateDir: o.State, Token: o.Token, Hostname: host, Logger: o.Logger, RelayOnly: o.RelayOnly,
		NewSink: flowSink})
	if err != nil {
		return err
	}
	return c.Run(ctx)
}

// flowSink reports the connector's flow records to the coordinator it
// enrolled with, under its node credential.
func flowSink(id *nodestate.Identity) (flowlog.Sink, error) {
	return coordclient.NewNodeClient(id.URL, id.Pin, id.Credential)
}
