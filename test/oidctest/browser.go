package oidctest

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"

	"golang.org/x/net/html"
)

// Browser does what a person's browser does with a login link: it keeps
// cookies, follows redirects, and fills in and posts a login form.
type Browser struct {
	// Client is the browser's HTTP client: a cookie jar, redirects
	// followed (at most 10 in a row), the trusted certificates.
	Client *http.Client
}

// NewBrowser returns a browser that trusts the provider's certificate and
// every certificate in extra (the relying party's, say).
func (p *Provider) NewBrowser(extra ...*x509.Certificate) *Browser {
	pool := p.CertPool()
	for _, c := range extra {
		pool.AddCert(c)
	}
	b := NewBrowser(pool)
	p.track(b.Client.Transport.(*http.Transport))
	return b
}

// NewBrowser returns a browser that trusts the certificates in roots.
func NewBrowser(roots *x509.CertPool) *Browser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		panic(err) // cookiejar.New with nil options cannot fail
	}
	return &Browser{Client: &http.Client{
		Jar: jar,
		Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{RootCAs: roots},
			ForceAttemptHTTP2: true,
		},
	}}
}

// Page is a response the browser ended on, its body read.
type Page struct {
	// URL is where the browser ended, after redirects.
	URL        *url.URL
	StatusCode int
	Header     http.Header
	Body       string
}

// Get opens the link and follows redirects to the page it ends on.
func (b *Browser) Get(ctx context.Context, link string) (*Page, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, link, nil)
	if err != nil {
		return nil, err
	}
	return b.do(req)
}

// Login opens the link and, when it leads to a login form, fills in the
// username and password and posts it, following redirects (back to the
// client's redirect URL and wherever that leads). It returns the page
// where the browser ended. A link that leads to no login form (an error
// page, a link already used) returns that page as is. A form shown again
// after the post (a wrong password, a disabled user) is an error with the
// form's message.
func (b *Browser) Login(ctx context.Context, link, username, password string) (*Page, error) {
	page, err := b.Get(ctx, link)
	if err != nil {
		return nil, err
	}
	form, ok := findLoginForm(page)
	if !ok {
		return page, nil
	}
	form.values.Set("username", username)
	form.values.Set("password", password)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, form.action, strings.NewReader(form.values.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	after, err := b.do(req)
	if err != nil {
		return nil, err
	}
	if again, ok := findLoginForm(after); ok {
		return nil, fmt.Errorf("logging in as %s: the provider showed its form again: %q", username, again.message)
	}
	return after, nil
}

func (b *Browser) do(req *http.Request) (*Page, error) {
	resp, err := b.Client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", resp.Request.URL, err)
	}
	return &Page{URL: resp.Request.URL, StatusCode: resp.StatusCode, Header: resp.Header, Body: string(body)}, nil
}

// loginForm is a form with a password field, as a browser sees it.
type loginForm struct {
	action  string     // absolute URL
	values  url.Values // its inputs' names and values
	message string     // the page's text beside the form (an error)
}

// findLoginForm finds the first POST form with a password input on the
// page, and its action resolved against the page's URL.
func findLoginForm(p *Page) (loginForm, bool) {
	if !strings.HasPrefix(p.Header.Get("Content-Type"), "text/html") {
		return loginForm{}, false
	}
	doc, err := html.Parse(bytes.NewReader([]byte(p.Body)))
	if err != nil {
		return loginForm{}, false
	}
	var found *html.Node
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if found != nil {
			return
		}
		if n.Type == html.ElementNode && n.Data == "form" && strings.EqualFold(attr(n, "method"), "post") && hasPassword(n) {
			found = n
			return
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	if found == nil {
		return loginForm{}, false
	}
	action, err := p.URL.Parse(attr(found, "action"))
	if err != nil {
		return loginForm{}, false
	}
	f := loginForm{action: action.String(), values: url.Values{}}
	var text strings.Builder
	var collect func(*html.Node)
	collect = func(n *html.Node) {
		switch {
		case n.Type == html.ElementNode && n.Data == "input" && attr(n, "name") != "":
			f.values.Set(attr(n, "name"), attr(n, "value"))
		case n.Type == html.TextNode:
			text.WriteString(n.Data)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			collect(c)
		}
	}
	collect(found)
	f.message = strings.Join(strings.Fields(text.String()), " ")
	return f, true
}

func hasPassword(n *html.Node) bool {
	if n.Type == html.ElementNode && n.Data == "input" && strings.EqualFold(attr(n, "type"), "password") {
		return true
	}
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		if hasPassword(c) {
			return true
		}
	}
	return false
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}
