package queue

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/redis/go-redis/v9"
)

// OpenRedis connects to the Redis named by a URL: redis://, rediss://,
// unix:// (socket), redis-sentinel://[:password@]host:port[,host:port]?master=NAME[&db=N]
// and redis-cluster://host:port[,host:port]. The password never appears in
// the errors it returns.
func OpenRedis(rawURL string) (redis.UniversalClient, error) {
	switch {
	case strings.HasPrefix(rawURL, "redis-sentinel://"):
		return openSentinel(rawURL)
	case strings.HasPrefix(rawURL, "redis-cluster://"):
		return openCluster(rawURL)
	}
	opt, err := redis.ParseURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("parse redis URL %s: %w", redact(rawURL), err)
	}
	return redis.NewClient(opt), nil
}

func openSentinel(rawURL string) (redis.UniversalClient, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("parse redis sentinel URL: invalid")
	}
	pass, _ := u.User.Password()
	q := u.Query()
	if q.Get("master") == "" {
		return nil, fmt.Errorf("parse redis sentinel URL %s: master is required", redact(rawURL))
	}
	db := 0
	if v := q.Get("db"); v != "" {
		if _, err := fmt.Sscanf(v, "%d", &db); err != nil {
			return nil, fmt.Errorf("parse redis sentinel URL %s: bad db", redact(rawURL))
		}
	}
	return redis.NewFailoverClient(&redis.FailoverOptions{
		MasterName:    q.Get("master"),
		SentinelAddrs: strings.Split(u.Host, ","),
		Password:      pass,
		DB:            db,
	}), nil
}

func openCluster(rawURL string) (redis.UniversalClient, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("parse redis cluster URL: invalid")
	}
	pass, _ := u.User.Password()
	return redis.NewClusterClient(&redis.ClusterOptions{
		Addrs:    strings.Split(u.Host, ","),
		Password: pass,
	}), nil
}

// redact drops the user information of a URL for error messages.
func redact(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "(unparsable URL)"
	}
	if u.User != nil {
		u.User = url.User("redacted")
	}
	return u.String()
}
