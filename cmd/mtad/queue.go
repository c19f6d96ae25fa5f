package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mtad/mtad/admin"
)

// defaultAPI is where the CLI looks for the management API when neither
// --api nor MTAD_API says otherwise.
const defaultAPI = "http://127.0.0.1:8025"

const queueUsage = `usage:
  mtad queue list [--queue Q] [--sender S] [--rcpt R] [--domain D] [--status pending|delivered|failed]
                  [--due-before T] [--due-after T] [--limit N] [--cursor ID] [--json]
  mtad queue show ID [--json]
  mtad queue summary [--json]
  mtad queue retry [ID...] [--queue Q] [--sender S] [--rcpt R] [--domain D] [--status S] [--due-before T] [--due-after T] [--json]
  mtad queue cancel [ID...] [--rcpt R] [--queue Q] [--sender S] [--domain D] [--status S] [--due-before T] [--due-after T] [--json]
  mtad queue suspend QUEUE | domain DOMAIN | sender DOMAIN [--json]
  mtad queue resume QUEUE | domain DOMAIN | sender DOMAIN [--json]
retry and cancel act on the messages given by id or, without ids, on every message the filters match;
cancel fails the pending recipients (only R with --rcpt) and needs ids or a filter.
common flags: --api URL (default $MTAD_API or ` + defaultAPI + `), --token TOKEN (default $MTAD_TOKEN)
`

// queueCmd runs "mtad queue list|show|summary|retry|cancel|suspend|resume"
// against the management API.
func queueCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, queueUsage)
		return 2
	}
	cmds := map[string]func(*queueFlags, []string, io.Writer) error{
		"list": queueList, "show": queueShow, "summary": queueSummary,
		"retry": queueRetry, "cancel": queueCancel, "suspend": queueSuspend(true), "resume": queueSuspend(false),
	}
	cmd, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "mtad: unknown queue command %q\n%s", args[0], queueUsage)
		return 2
	}
	qf := newQueueFlags(args[0], stderr)
	pos, err := parseInterspersed(qf.fs, args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		return 2
	}
	if err := cmd(qf, pos, stdout); err != nil {
		fmt.Fprintf(stderr, "mtad: %v\n", err)
		if errors.Is(err, errUsage) {
			fmt.Fprint(stderr, queueUsage)
			return 2
		}
		return 1
	}
	return 0
}

var errUsage = errors.New("bad arguments")

// queueFlags are the flags of every queue command; the filters are only
// defined for list, retry and cancel, and rcpt, for cancel, is the
// recipient to cancel.
type queueFlags struct {
	fs      *flag.FlagSet
	api     *string
	token   *string
	json    *bool
	filters map[string]*string // query parameter -> value
	rcpt    *string
}

// filterFlags are list's filters; retry and cancel take those that do not
// page.
var filterFlags = []struct {
	flag, param, help string
	paging            bool
}{
	{"queue", "queue", "only recipients in this virtual queue", false},
	{"sender", "sender", "only messages from this sender (<> for bounces)", false},
	{"rcpt", "rcpt", "only this recipient", false},
	{"domain", "domain", "only recipients in this domain", false},
	{"status", "status", "pending, delivered or failed", false},
	{"due-before", "due_before", "only recipients due before this RFC 3339 time", false},
	{"due-after", "due_after", "only recipients due after this RFC 3339 time", false},
	{"limit", "limit", "messages per page (at most 1000; default 100)", true},
	{"cursor", "cursor", "start after this message id (the next_cursor of the previous page)", true},
}

func newQueueFlags(name string, stderr io.Writer) *queueFlags {
	fs := flag.NewFlagSet("queue "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	api := os.Getenv("MTAD_API")
	if api == "" {
		api = defaultAPI
	}
	qf := &queueFlags{
		fs:      fs,
		api:     fs.String("api", api, "management API base URL (env MTAD_API)"),
		token:   fs.String("token", os.Getenv("MTAD_TOKEN"), "management API bearer token (env MTAD_TOKEN)"),
		json:    fs.Bool("json", false, "print the API's JSON instead of a table"),
		filters: map[string]*string{},
	}
	if name == "cancel" {
		qf.rcpt = fs.String("rcpt", "", "cancel only this recipient (without ids, of every message that has it pending)")
	}
	for _, f := range filterFlags {
		switch {
		case name == "list",
			name == "retry" && !f.paging,
			name == "cancel" && !f.paging && f.param != "rcpt":
			qf.filters[f.param] = fs.String(f.flag, "", f.help)
		}
	}
	return qf
}

// query returns the filters that are set as query parameters.
func (qf *queueFlags) query() url.Values {
	q := url.Values{}
	for param, v := range qf.filters {
		if *v != "" {
			q.Set(param, *v)
		}
	}
	return q
}

// parseInterspersed parses flags that may come before or after the
// positional arguments, and returns the positional ones.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

func queueList(qf *queueFlags, pos []string, stdout io.Writer) error {
	if len(pos) != 0 {
		return fmt.Errorf("queue list takes no arguments: %w", errUsage)
	}
	var resp admin.ListResponse
	raw, err := qf.client().get("/api/v1/messages", qf.query(), &resp)
	if err != nil || *qf.json {
		return printRaw(stdout, raw, err)
	}
	return printList(stdout, &resp)
}

func queueShow(qf *queueFlags, pos []string, stdout io.Writer) error {
	if len(pos) != 1 {
		return fmt.Errorf("queue show takes one message id: %w", errUsage)
	}
	var m admin.Message
	raw, err := qf.client().get("/api/v1/messages/"+url.PathEscape(pos[0]), nil, &m)
	if err != nil || *qf.json {
		return printRaw(stdout, raw, err)
	}
	return printMessage(stdout, &m)
}

func queueSummary(qf *queueFlags, pos []string, stdout io.Writer) error {
	if len(pos) != 0 {
		return fmt.Errorf("queue summary takes no arguments: %w", errUsage)
	}
	var s admin.Summary
	raw, err := qf.client().get("/api/v1/summary", nil, &s)
	if err != nil || *qf.json {
		return printRaw(stdout, raw, err)
	}
	return printSummary(stdout, &s)
}

func queueRetry(qf *queueFlags, ids []string, stdout io.Writer) error {
	q := qf.query()
	if len(ids) > 0 && len(q) > 0 {
		return fmt.Errorf("give message ids or filters, not both: %w", errUsage)
	}
	var sel admin.Selected
	raw, err := qf.client().post("/api/v1/messages/retry", q, admin.SelectRequest{IDs: ids}, &sel)
	if err != nil || *qf.json {
		return printRaw(stdout, raw, err)
	}
	_, err = fmt.Fprintf(stdout, "%s scheduled for retry\n", count(sel.Matched, "message"))
	return err
}

// queueCancel refuses, as the API does, to cancel without ids or a
// filter. Without ids, --rcpt is a filter too.
func queueCancel(qf *queueFlags, ids []string, stdout io.Writer) error {
	q := qf.query()
	if len(ids) > 0 && len(q) > 0 {
		return fmt.Errorf("give message ids or filters, not both (--rcpt goes with either): %w", errUsage)
	}
	if len(ids) == 0 && *qf.rcpt != "" {
		q.Set("rcpt", *qf.rcpt)
	}
	if len(ids) == 0 && len(q) == 0 {
		return fmt.Errorf("refusing to cancel every message in the queue: give message ids or a filter such as --queue, --domain or --rcpt: %w", errUsage)
	}
	var sel admin.Selected
	raw, err := qf.client().post("/api/v1/messages/cancel", q, admin.SelectRequest{IDs: ids, Rcpt: *qf.rcpt}, &sel)
	if err != nil || *qf.json {
		return printRaw(stdout, raw, err)
	}
	fmt.Fprintf(stdout, "%s cancelled\n", count(sel.Matched, "message"))
	if sel.Skipped > 0 {
		fmt.Fprintf(stdout, "%s left alone: the filters match only some of their pending recipients (cancel those by id, with --rcpt for one recipient)\n",
			count(sel.Skipped, "message"))
	}
	return nil
}

func queueSuspend(suspend bool) func(*queueFlags, []string, io.Writer) error {
	verb, done := "resume", "resumed"
	if suspend {
		verb, done = "suspend", "suspended: its mail stays queued and keeps its expiry"
	}
	return func(qf *queueFlags, pos []string, stdout io.Writer) error {
		if len(pos) == 2 && (pos[0] == "domain" || pos[0] == "sender") {
			var st admin.DomainState
			path := "/api/v1/domains/"
			if pos[0] == "sender" {
				path = "/api/v1/senders/"
			}
			raw, err := qf.client().post(path+url.PathEscape(pos[1])+"/"+verb, nil, nil, &st)
			if err != nil || *qf.json {
				return printRaw(stdout, raw, err)
			}
			what := "mail to " + st.Domain
			if st.Kind == "sender" {
				what = "mail from " + st.Domain
			}
			_, err = fmt.Fprintf(stdout, "%s %s\n", what, strings.Replace(done, "its mail", "it", 1))
			return err
		}
		if len(pos) != 1 {
			return fmt.Errorf("queue %s takes a queue name, or domain DOMAIN, or sender DOMAIN: %w", verb, errUsage)
		}
		var st admin.QueueState
		raw, err := qf.client().post("/api/v1/queues/"+url.PathEscape(pos[0])+"/"+verb, nil, nil, &st)
		if err != nil || *qf.json {
			return printRaw(stdout, raw, err)
		}
		_, err = fmt.Fprintf(stdout, "queue %s %s\n", st.Queue, done)
		return err
	}
}

func count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

func printRaw(w io.Writer, raw []byte, err error) error {
	if err != nil {
		return err
	}
	_, err = w.Write(raw)
	return err
}

func (qf *queueFlags) client() *apiClient {
	base := strings.TrimRight(*qf.api, "/")
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	return &apiClient{base: base, token: *qf.token, http: &http.Client{Timeout: 30 * time.Second}}
}

// apiClient speaks to the management API.
type apiClient struct {
	base  string
	token string
	http  *http.Client
}

// get fetches path, decodes a 200 into out and returns the raw body. Its
// errors tell the operator what to do.
func (c *apiClient) get(path string, q url.Values, out any) ([]byte, error) {
	return c.do(http.MethodGet, path, q, nil, out)
}

// post sends in (nothing when nil) as JSON, and answers as get does.
func (c *apiClient) post(path string, q url.Values, in, out any) ([]byte, error) {
	return c.do(http.MethodPost, path, q, in, out)
}

func (c *apiClient) do(method, path string, q url.Values, in, out any) ([]byte, error) {
	u := c.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var rd io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		return nil, fmt.Errorf("--api %q: %w", c.base, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, c.unreachable(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("reading the answer of %s: %w", c.base, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, c.refused(resp, body)
	}
	if err := json.Unmarshal(body, out); err != nil {
		return nil, fmt.Errorf("%s did not answer as the mtad management API does (%v): is --api right?", c.base, err)
	}
	return body, nil
}

func (c *apiClient) unreachable(err error) error {
	var nerr net.Error
	if errors.As(err, &nerr) || errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("cannot reach the management API at %s: is mtad running with [server.management] bind set? (use --api or MTAD_API for another address): %w", c.base, err)
	}
	return fmt.Errorf("management API at %s: %w", c.base, err)
}

func (c *apiClient) refused(resp *http.Response, body []byte) error {
	if resp.StatusCode == http.StatusUnauthorized {
		if c.token == "" {
			return fmt.Errorf("401 from %s: a token is required: set --token or MTAD_TOKEN to [server.management] token", c.base)
		}
		return fmt.Errorf("401 from %s: the token was refused: set --token or MTAD_TOKEN to [server.management] token", c.base)
	}
	var e admin.Error
	if json.Unmarshal(body, &e) != nil || e.Error == "" {
		e.Error = strings.TrimSpace(string(body))
	}
	switch resp.StatusCode {
	case http.StatusNotFound:
		return fmt.Errorf("%s (404)", e.Error)
	case http.StatusBadRequest:
		return fmt.Errorf("the API refused the request: %s", e.Error)
	case http.StatusNotImplemented:
		return fmt.Errorf("the mtad at %s cannot change the queue: %s (501)", c.base, e.Error)
	}
	return fmt.Errorf("%s from %s: %s", resp.Status, c.base, e.Error)
}

// Tables.

func printList(w io.Writer, resp *admin.ListResponse) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tARRIVAL\tSIZE\tFROM\tRECIPIENT\tSTATUS\tQUEUE\tATTEMPTS\tNEXT ATTEMPT\tLAST REPLY")
	for _, m := range resp.Messages {
		lead := fmt.Sprintf("%s\t%s\t%d\t%s", m.ID, stamp(m.Arrival), m.Size, sender(m.From))
		for _, r := range m.Recipients {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", lead, r.Addr, r.Status, r.Queue, r.Attempts, stamp(r.NextAttempt), reply(r))
			lead = "\t\t\t"
		}
		if more := m.RcptCount - len(m.Recipients); more > 0 {
			fmt.Fprintf(tw, "%s\t(%d more: mtad queue show %s)\n", lead, more, m.ID)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "%d messages", len(resp.Messages))
	if resp.NextCursor != "" {
		fmt.Fprintf(w, "; more with --cursor %s", resp.NextCursor)
	}
	_, err := fmt.Fprintln(w)
	return err
}

func printMessage(w io.Writer, m *admin.Message) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, kv := range [][2]string{
		{"ID", m.ID}, {"From", sender(m.From)}, {"Arrival", stamp(m.Arrival)}, {"Size", strconv.FormatInt(m.Size, 10)},
		{"Source", m.Source}, {"Received from", strings.TrimSpace(m.ReceivedFromIP + " " + m.Helo)},
		{"Body", m.Body}, {"EnvID", m.EnvID}, {"Ret", m.Ret}, {"Flags", flags(m)},
		{"Recipients", fmt.Sprintf("%d (%d pending)", m.RcptCount, m.Pending)},
	} {
		if kv[1] != "" {
			fmt.Fprintf(tw, "%s:\t%s\n", kv[0], kv[1])
		}
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "#\tRECIPIENT\tSTATUS\tQUEUE\tATTEMPTS\tNEXT ATTEMPT\tNOTIFY\tLAST REPLY")
	for _, r := range m.Recipients {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", r.Index, r.Addr, r.Status, r.Queue, r.Attempts, stamp(r.NextAttempt), r.Notify, reply(r))
	}
	return tw.Flush()
}

func printSummary(w io.Writer, s *admin.Summary) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "Messages:\t%d (%d with pending recipients)\n", s.Messages, s.PendingMessages)
	fmt.Fprintf(tw, "Pending recipients:\t%d\n", s.PendingRcpts)
	if s.OldestPendingID != "" {
		age := time.Duration(s.OldestPendingAge) * time.Second
		fmt.Fprintf(tw, "Oldest pending:\t%v (%s)\n", age, s.OldestPendingID)
	}
	fmt.Fprintln(tw, "\nSTATUS\tRECIPIENTS")
	for _, st := range []string{"pending", "delivered", "failed"} {
		fmt.Fprintf(tw, "%s\t%d\n", st, s.ByStatus[st])
	}
	fmt.Fprintln(tw, "\nQUEUE\tPENDING")
	for _, q := range sortedKeys(s.ByQueue) {
		fmt.Fprintf(tw, "%s\t%d\n", q, s.ByQueue[q])
	}
	fmt.Fprintln(tw, "\nDOMAIN\tPENDING")
	for _, d := range s.ByDomain {
		fmt.Fprintf(tw, "%s\t%d\n", d.Domain, d.Count)
	}
	if s.DomainsNotShown > 0 {
		fmt.Fprintf(tw, "(%d more domains)\t\n", s.DomainsNotShown)
	}
	if len(s.BySite) > 0 {
		fmt.Fprintln(tw, "\nSITE (of the domains above)\tPENDING")
		for _, site := range sortedKeys(s.BySite) {
			fmt.Fprintf(tw, "%s\t%d\n", site, s.BySite[site])
		}
	}
	return tw.Flush()
}

func sortedKeys(m map[string]int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04:05")
}

func sender(from string) string {
	if from == "" {
		return "<>"
	}
	return from
}

func reply(r admin.Recipient) string {
	if s := r.LastReply.String(); s != "" {
		return s
	}
	return "-"
}

func flags(m *admin.Message) string {
	var f []string
	if m.SMTPUTF8 {
		f = append(f, "SMTPUTF8")
	}
	if m.RequireTLS {
		f = append(f, "REQUIRETLS")
	}
	if m.Priority != 0 {
		f = append(f, "priority="+strconv.Itoa(m.Priority))
	}
	return strings.Join(f, " ")
}
