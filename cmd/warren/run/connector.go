package run

import (
	"context"
	"os"

	"github.com/warrennet/warren/cmd/warren/cli"
	"github.com/warrennet/warren/overlay/connector"
)

// Connector runs the connector until ctx ends.
func Connector(ctx context.Context, o cli.ConnectorOptions) error {
	limitMemory(o.Logger, connectorMemoryLimit)
	paceCollector(o.Logger, connectorGCPercent)
	defer governProcs(ctx, o.Logger)()
	host, _ := os.Hostname()
	c, err := connector.New(ctx, connector.Config{StateDir: o.State, Token: o.Token, Hostname: host, Logger: o.Logger, RelayOnly: o.RelayOnly})
	if err != nil {
		return err
	}
	return c.Run(ctx)
}
