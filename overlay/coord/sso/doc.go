// Package sso is the coordinator's side of single sign-on with OpenID
// Connect: discovery, the authorization-code flow with PKCE and a nonce,
// the ID token's checks (signature, issuer, audience, expiry, nonce,
// verified e-mail, allowed domains), the groups claim, and refreshing a
// user to learn whether the provider still accepts them. Token checks are
// go-oidc's; the protocol is golang.org/x/oauth2's.
//
// It knows nothing of nodes, logins or the store: package coord drives it.
// It must not import coord, api, the store or any cmd package: among
// Warren packages it imports only wire (user names, printable text).
package sso
