package coordclient

import (
	"context"
	"net/http"
	"net/url"

	"github.com/warrennet/warren/overlay/wire"
)

// Users lists every user: people who logged in by single sign-on and
// users only tokens or nodes name.
func (a *Admin) Users(ctx context.Context) ([]wire.User, error) {
	var resp []wire.User
	if err := a.c.do(ctx, http.MethodGet, wire.PathUsers, nil, &resp); err != nil {
		return nil, err
	}
	return resp, nil
}

// RemoveUser removes the user with this e-mail address and every node of
// theirs at once; their nodes' credentials stop working and their control
// streams end.
func (a *Admin) RemoveUser(ctx context.Context, email string) error {
	return a.c.do(ctx, http.MethodDelete, wire.PathUsers+"/"+url.PathEscape(email), nil, nil)
}
