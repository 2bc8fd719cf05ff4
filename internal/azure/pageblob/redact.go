package pageblob

import (
	"errors"
	"net/url"
	"regexp"
	"strings"
)

// Redacted replaces every secret removed from an error's text.
const Redacted = "REDACTED"

// safeParams are the query parameters of Blob service requests that carry
// no secret; every other parameter of a URL in an error (a SAS's sig, se,
// sp, skoid, ... and whatever a future SAS version adds) is redacted.
var safeParams = map[string]bool{"comp": true, "restype": true, "timeout": true, "prefix": true, "marker": true,
	"maxresults": true, "include": true, "delimiter": true, "snapshot": true, "versionid": true, "blockid": true, "api-version": true}

// sasParams are the SAS parameters that can be secret or identify the
// signer (sig above all), redacted wherever they appear, in a URL or not
// (https://learn.microsoft.com/rest/api/storageservices/create-service-sas,
// create-user-delegation-sas, create-account-sas).
var sasParam = regexp.MustCompile(`(?i)\b(sig|se|st|sp|spr|sip|si|ss|srt|sr|sdd|ses|skoid|sktid|skt|ske|sks|skv|saoid|suoid|scid|rscc|rscd|rsce|rscl|rsct)=([^&\s"';]+)`)

var urlRE = regexp.MustCompile(`https?://[^\s"'<>]+`)

// Redact returns err with every SAS and account-key value removed from its
// text: each of secrets (a SAS token and its values, an account key, a
// connection string) literally and URL-encoded, every query parameter but
// the Blob service's harmless ones (comp, restype, ...) of each URL, and
// every SAS parameter anywhere. The text is rewritten whatever err's type;
// a *url.Error in the chain (the transport's, which holds the request's
// whole URL) has its URL redacted too, so errors.As still finds it and it
// leaks nothing. Redact is for error paths only: it costs a few regexp
// passes over the message.
func Redact(err error, secrets []string) error {
	if err == nil {
		return nil
	}
	var re *redactedError
	if errors.As(err, &re) && len(secrets) == 0 {
		return err
	}
	walk(err, func(e error) {
		if ue, ok := e.(*url.Error); ok {
			ue.URL = redactText(ue.URL, secrets)
		}
	})
	return &redactedError{msg: redactText(err.Error(), secrets), err: err}
}

type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// walk calls fn on every error in err's tree.
func walk(err error, fn func(error)) {
	if err == nil {
		return
	}
	fn(err)
	switch u := err.(type) {
	case interface{ Unwrap() error }:
		walk(u.Unwrap(), fn)
	case interface{ Unwrap() []error }:
		for _, e := range u.Unwrap() {
			walk(e, fn)
		}
	}
}

func redactText(s string, secrets []string) string {
	for _, sec := range secrets {
		if len(sec) < 8 { // too short to replace alone; sasParam takes it
			continue
		}
		for _, form := range []string{sec, url.QueryEscape(sec), url.PathEscape(sec), unescape(sec)} {
			if form != "" {
				s = strings.ReplaceAll(s, form, Redacted)
			}
		}
	}
	s = urlRE.ReplaceAllStringFunc(s, redactQuery)
	return sasParam.ReplaceAllString(s, "${1}="+Redacted)
}

func unescape(s string) string {
	u, err := url.QueryUnescape(s)
	if err != nil {
		return ""
	}
	return u
}

// redactQuery keeps a URL's path and the names of its query parameters
// and replaces the value of each parameter that is not in safeParams.
func redactQuery(u string) string {
	i := strings.IndexByte(u, '?')
	if i < 0 {
		return u
	}
	params := strings.Split(u[i+1:], "&")
	for j, p := range params {
		k, _, _ := strings.Cut(p, "=")
		if !safeParams[strings.ToLower(k)] {
			params[j] = k + "=" + Redacted
		}
	}
	return u[:i+1] + strings.Join(params, "&")
}

// Secrets returns the values of c that must never be printed: the SAS and
// each of its values, and the account key and SAS of the connection
// string. Give them to Redact.
func Secrets(c ClientConfig) []string {
	var out []string
	addSAS := func(tok string) {
		tok = strings.TrimPrefix(strings.TrimSpace(tok), "?")
		if tok == "" {
			return
		}
		out = append(out, tok)
		if q, err := url.ParseQuery(tok); err == nil {
			for k, vs := range q {
				if safeParams[strings.ToLower(k)] || strings.EqualFold(k, "sv") || strings.EqualFold(k, "sr") {
					continue
				}
				out = append(out, vs...)
			}
		}
	}
	addSAS(c.SAS)
	if c.ConnectionString != "" {
		out = append(out, c.ConnectionString)
		for _, part := range strings.Split(c.ConnectionString, ";") {
			k, v, _ := strings.Cut(part, "=")
			switch strings.ToLower(strings.TrimSpace(k)) {
			case "accountkey":
				out = append(out, v)
			case "sharedaccesssignature":
				addSAS(v)
			}
		}
	}
	return out
}
