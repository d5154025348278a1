package oidctest

import (
	"context"
	"html/template"
	"net/http"
)

// loginPath is where the example storage's clients send a person to log
// in (storage.WebClient's login URL: /login/username?authRequestID=ID).
const loginPath = "/login/username"

// loginPage is the provider's login UI, which the OP leaves to its host:
// a form with the auth request's ID, a username and a password. A good
// password completes the auth request (the example storage's check) and
// sends the browser back to the OP, which redirects to the client.
type loginPage struct {
	check    func(username, password, authRequestID string) error
	callback func(ctx context.Context, authRequestID string) string
}

var loginTemplate = template.Must(template.New("login").Parse(`<!DOCTYPE html>
<html><head><meta charset="UTF-8"><title>Log in</title></head>
<body>
<form method="POST" action="` + loginPath + `">
<input type="hidden" name="id" value="{{.ID}}">
<label>Username <input name="username" autocomplete="username"></label>
<label>Password <input name="password" type="password" autocomplete="current-password"></label>
<p class="error">{{.Error}}</p>
<button type="submit">Log in</button>
</form>
</body></html>
`))

func (l *loginPage) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
		l.render(w, r.URL.Query().Get("authRequestID"), "")
	case http.MethodPost:
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		id := r.PostForm.Get("id")
		if err := l.check(r.PostForm.Get("username"), r.PostForm.Get("password"), id); err != nil {
			l.render(w, id, err.Error())
			return
		}
		http.Redirect(w, r, l.callback(r.Context(), id), http.StatusFound)
	default:
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

func (l *loginPage) render(w http.ResponseWriter, id, errText string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	loginTemplate.Execute(w, struct{ ID, Error string }{id, errText})
}
