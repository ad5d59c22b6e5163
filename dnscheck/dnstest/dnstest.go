// Package dnstest is a DNS server on loopback for tests: it serves the
// TXT and MX records a test adds, over UDP and TCP on one port, with
// miekg/dns. Nothing but tests imports it.
package dnstest

import (
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

// Server is an authoritative-looking DNS server for whatever names the
// test adds. Names it does not know answer NXDOMAIN.
type Server struct {
	// Addr is "127.0.0.1:port", the same port for UDP and TCP.
	Addr string

	mu      sync.Mutex
	records map[string][]dns.RR // by lower-case FQDN
	// truncateUDP answers every UDP query with TC set and no records, so
	// that resolvers retry over TCP.
	truncateUDP bool
	// rcode, when not success, answers every query with it and nothing
	// else.
	rcode int
	// queries counts queries by network ("udp", "tcp").
	queries map[string]int
	// stop shuts both listeners down.
	stop func()
}

// Start serves on 127.0.0.1 until the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	s := &Server{records: map[string][]dns.RR{}, queries: map[string]int{}}
	pc, ln := listen(t)
	s.Addr = pc.LocalAddr().String()
	udp := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(s.serve)}
	tcp := &dns.Server{Listener: ln, Handler: dns.HandlerFunc(s.serve)}
	go func() { _ = udp.ActivateAndServe() }()
	go func() { _ = tcp.ActivateAndServe() }()
	var once sync.Once
	s.stop = func() {
		once.Do(func() {
			// Shutdown does nothing to a server not yet serving: close
			// the sockets themselves too.
			_, _ = udp.Shutdown(), tcp.Shutdown()
			_, _ = pc.Close(), ln.Close()
		})
	}
	t.Cleanup(s.Stop)
	return s
}

// Stop closes the server's port: queries to Addr then fail as they do
// when a resolver is down (UDP: connection refused).
func (s *Server) Stop() { s.stop() }

// Rcode makes every answer carry rcode (dns.RcodeServerFailure,
// dns.RcodeRefused…) and no records; dns.RcodeSuccess serves the records
// again.
func (s *Server) Rcode(rcode int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rcode = rcode
}

// listen binds UDP on a free loopback port and TCP on the same port,
// trying again when another process holds the TCP side.
func listen(t testing.TB) (net.PacketConn, net.Listener) {
	t.Helper()
	for range 20 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("listen udp: %v", err)
		}
		ln, err := net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			return pc, ln
		}
		_ = pc.Close()
	}
	t.Fatal("no loopback port free for both UDP and TCP")
	return nil, nil
}

// TruncateUDP makes every UDP answer truncated, forcing TCP.
func (s *Server) TruncateUDP(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.truncateUDP = on
}

// Queries is how many queries arrived over network ("udp" or "tcp").
func (s *Server) Queries(network string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queries[network]
}

// AddTXT adds one TXT record at name holding value, split into strings
// of at most 255 octets as DNS requires (RFC 1035 §3.3.14).
func (s *Server) AddTXT(name, value string) {
	var parts []string
	for len(value) > 255 {
		parts, value = append(parts, value[:255]), value[255:]
	}
	parts = append(parts, value)
	s.add(&dns.TXT{Hdr: header(name, dns.TypeTXT), Txt: parts})
}

// AddMX adds an MX record at name.
func (s *Server) AddMX(name string, pref uint16, host string) {
	s.add(&dns.MX{Hdr: header(name, dns.TypeMX), Preference: pref, Mx: dns.Fqdn(host)})
}

// AddIP adds an A record at name, or AAAA for an IPv6 address.
func (s *Server) AddIP(name string, ip net.IP) {
	if v4 := ip.To4(); v4 != nil {
		s.add(&dns.A{Hdr: header(name, dns.TypeA), A: v4})
		return
	}
	s.add(&dns.AAAA{Hdr: header(name, dns.TypeAAAA), AAAA: ip})
}

// Clear removes every record at name.
func (s *Server) Clear(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.records, key(name))
}

func header(name string, rrtype uint16) dns.RR_Header {
	return dns.RR_Header{Name: dns.Fqdn(name), Rrtype: rrtype, Class: dns.ClassINET, Ttl: 60}
}

func key(name string) string { return strings.ToLower(dns.Fqdn(name)) }

func (s *Server) add(rr dns.RR) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := key(rr.Header().Name)
	s.records[k] = append(s.records[k], rr)
}

func (s *Server) serve(w dns.ResponseWriter, req *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	network := w.LocalAddr().Network()
	s.mu.Lock()
	s.queries[network]++
	truncate := s.truncateUDP && network == "udp"
	if s.rcode != dns.RcodeSuccess {
		m.Rcode = s.rcode
	} else if len(req.Question) == 1 {
		q := req.Question[0]
		rrs, known := s.records[key(q.Name)]
		if !known {
			m.Rcode = dns.RcodeNameError
		}
		for _, rr := range rrs {
			if rr.Header().Rrtype == q.Qtype {
				m.Answer = append(m.Answer, dns.Copy(rr))
			}
		}
	}
	s.mu.Unlock()
	if truncate {
		m.Answer, m.Truncated = nil, true
	}
	if network == "udp" {
		size := dns.MinMsgSize
		if opt := req.IsEdns0(); opt != nil {
			size = int(opt.UDPSize())
		}
		m.Truncate(size) // sets TC when the answer does not fit
	}
	_ = w.WriteMsg(m)
}
