package wire

import (
	"fmt"
	"regexp"
	"time"
)

// Identity: single sign-on (a laptop enrolls as the person who logs in at
// the identity provider), users, and the SSH certificate authority.
const (
	// PathLogin starts a login: POST LoginStartRequest, no credential;
	// the answer is LoginStartResponse. Refused with CodeSSODisabled
	// when the coordinator has no identity provider.
	PathLogin = "/v1/login"
	// PathLoginWait waits for a login to finish: POST LoginWaitRequest,
	// no credential (the wait secret is the proof). It answers at once
	// when the login has finished, else after at most LoginWaitMax with
	// Done false. A login that expired, was refused at the provider or
	// was already collected is an error (CodeLoginExpired,
	// CodeLoginRefused, CodeLoginUsed).
	PathLoginWait = "/v1/login/wait"
	// PathLoginPage is what a person opens in a browser: GET
	// PathLoginPage + "/" + ID redirects to the identity provider.
	PathLoginPage = "/login"
	// PathOIDCCallback is the redirect URL to register at the identity
	// provider: https://COORDINATOR/oidc/callback.
	PathOIDCCallback = "/oidc/callback"
	// PathLogout removes the calling node (POST, a client's credential):
	// `warren logout`.
	PathLogout = "/v1/logout"

	// PathUsers lists users: GET []User. DELETE PathUsers + "/EMAIL"
	// removes the user and every node of theirs at once.
	PathUsers = "/v1/admin/users"

	// PathSSHCert signs the calling client's SSH public key: POST
	// SSHCertRequest with a client's credential, SSHCertResponse.
	PathSSHCert = "/v1/ssh/cert"
	// PathSSHCA is the CA's public keys: GET SSHCA.
	PathSSHCA = "/v1/admin/ssh-ca"
	// PathSSHCARotate starts a rotation: POST SSHCARotateRequest, SSHCA.
	PathSSHCARotate = "/v1/admin/ssh-ca/rotate"
	// PathSSHCALog lists certificates issued: GET
	// ?user=EMAIL&limit=N, []SSHCertRecord, newest first.
	PathSSHCALog = "/v1/admin/ssh-ca/log"
)

// Error codes of the identity endpoints.
const (
	CodeSSODisabled  = "sso_disabled"  // the coordinator has no identity provider
	CodeLoginExpired = "login_expired" // the login link's 10 minutes have passed
	CodeLoginUsed    = "login_used"    // the login link was already used
	CodeLoginRefused = "login_refused" // the provider or the coordinator refused the person
	CodeNoPrincipals = "no_principals" // no ssh rule lets this user log in as anybody
	CodeForbidden    = "forbidden"     // a valid credential of a node that may not do this (a connector asking for an SSH certificate)
)

// LoginTTL is how long a login link stays valid.
const LoginTTL = 10 * time.Minute

// LoginWaitMax is how long PathLoginWait holds a request open.
const LoginWaitMax = 30 * time.Second

// LoginStartRequest starts enrolling a laptop by single sign-on. The key
// is bound to the login: whoever finishes it, the node enrolled has this
// key, and only the holder of the wait secret learns its credential.
type LoginStartRequest struct {
	PublicKey Key    `json:"public_key"`
	Hostname  string `json:"hostname,omitempty"`
}

// Validate checks the request.
func (r LoginStartRequest) Validate() error {
	return EnrollRequest(r).Validate()
}

// LoginStartResponse says where the person logs in.
type LoginStartResponse struct {
	// URL is the login link to open in a browser.
	URL string `json:"url"`
	// Code is shown on the login page and by `warren up`: the person
	// checks they match before logging in (a link sent by someone else
	// shows another code).
	Code string `json:"code"`
	// WaitSecret is the proof PathLoginWait asks for; it never leaves
	// the laptop.
	WaitSecret string    `json:"wait_secret"`
	ExpiresAt  time.Time `json:"expires_at"`
}

// LoginWaitRequest asks whether the login has finished.
type LoginWaitRequest struct {
	WaitSecret string `json:"wait_secret"`
}

// LoginWaitResponse is Done with the enrollment once the person has
// logged in; Done false means ask again.
type LoginWaitResponse struct {
	Done   bool            `json:"done"`
	Enroll *EnrollResponse `json:"enroll,omitempty"`
}

// User is a person: from single sign-on, or named by a token (`token
// create --user`).
type User struct {
	Email string `json:"email"`
	// Source is "sso" for a person who logged in, "token" for one only
	// tokens name.
	Source string `json:"source"`
	// Groups are the identity provider's groups for the user at the last
	// login or validation (usable as group:NAME in the policy).
	Groups []string `json:"groups,omitempty"`
	// Nodes names the user's nodes.
	Nodes     []string   `json:"nodes,omitempty"`
	LastLogin *time.Time `json:"last_login,omitempty"`
	// ValidatedAt is when the provider last confirmed the user.
	ValidatedAt *time.Time `json:"validated_at,omitempty"`
	// Disabled says the provider refused the user at the last
	// validation; Reason says how. A disabled user has no nodes until
	// they log in again.
	Disabled bool   `json:"disabled,omitempty"`
	Reason   string `json:"reason,omitempty"`
}

// Sources of a User.
const (
	UserSourceSSO   = "sso"
	UserSourceToken = "token"
)

// SSHCertRequest asks for a certificate on an SSH public key.
type SSHCertRequest struct {
	// PublicKey is the key in authorized_keys form ("ssh-ed25519 AAAA…
	// comment").
	PublicKey string `json:"public_key"`
	// Validity is how long the certificate should be valid; zero means
	// DefaultSSHCertValidity. The coordinator caps it.
	Validity Duration `json:"validity,omitempty"`
}

// DefaultSSHCertValidity is a certificate's validity unless asked
// otherwise.
const DefaultSSHCertValidity = time.Hour

// SSHCertResponse is a signed certificate.
type SSHCertResponse struct {
	// Certificate is in authorized_keys form, as OpenSSH reads
	// ID-cert.pub.
	Certificate string    `json:"certificate"`
	Serial      uint64    `json:"serial"`
	KeyID       string    `json:"key_id"`
	Principals  []string  `json:"principals"`
	ValidAfter  time.Time `json:"valid_after"`
	ValidBefore time.Time `json:"valid_before"`
}

// SSHCA is the certificate authority's keys, every one sshd should trust.
type SSHCA struct {
	Keys []SSHCAKey `json:"keys"`
}

// SSHCAKey is one CA key.
type SSHCAKey struct {
	// PublicKey is the line for sshd's TrustedUserCAKeys.
	PublicKey   string `json:"public_key"`
	Fingerprint string `json:"fingerprint"` // SHA256:…, as ssh-keygen -l prints it
	// State is "signing" (signs certificates now), "next" (trusted ahead
	// of signing, from SigningFrom) or "retiring" (no longer signs;
	// trusted until RetiresAt, when the last certificate it signed
	// expires).
	State       string     `json:"state"`
	CreatedAt   time.Time  `json:"created_at"`
	SigningFrom *time.Time `json:"signing_from,omitempty"`
	RetiresAt   *time.Time `json:"retires_at,omitempty"`
}

// States of an SSHCAKey.
const (
	SSHCASigning  = "signing"
	SSHCANext     = "next"
	SSHCARetiring = "retiring"
)

// SSHCARotateRequest starts a rotation: a new key is trusted at once and
// signs after Overlap (0: at once), so sshd can learn it first.
type SSHCARotateRequest struct {
	Overlap Duration `json:"overlap"`
}

// SSHCertRecord is one certificate issued.
type SSHCertRecord struct {
	Serial     uint64   `json:"serial"`
	User       string   `json:"user"`
	Node       string   `json:"node"`
	Principals []string `json:"principals"`
	// KeyFingerprint is the certified key's, CAFingerprint the signer's.
	KeyFingerprint string    `json:"key_fingerprint"`
	CAFingerprint  string    `json:"ca_fingerprint"`
	IssuedAt       time.Time `json:"issued_at"`
	ValidAfter     time.Time `json:"valid_after"`
	ValidBefore    time.Time `json:"valid_before"`
}

// principalRE is what a principal (a UNIX user name on the servers) may
// be: the portable user names of POSIX, up to 32 characters.
var principalRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]{0,31}$`)

// ValidatePrincipal checks an SSH principal: a UNIX user name.
func ValidatePrincipal(p string) error {
	if !principalRE.MatchString(p) {
		return fmt.Errorf("%q is not a UNIX user name (letters, digits, '_', '.', '-', not starting with a digit, '.' or '-', at most 32)", p)
	}
	return nil
}
