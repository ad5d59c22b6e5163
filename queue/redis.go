package queue

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/mailgate/mailgate/internal/redact"
)

// OpenRedis connects to the Redis named by a URL: redis://, rediss://,
// unix:// (socket), redis-sentinel://[:password@]host:port[,host:port]?master=NAME[&db=N]
// and redis-cluster://host:port[,host:port]. The password never appears in
// the errors it returns.
func OpenRedis(rawURL string) (redis.UniversalClient, error) {
	u, err := redact.ParseURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("parse redis URL %s: %w", redact.URL(rawURL), err)
	}
	switch {
	case strings.HasPrefix(rawURL, "redis-sentinel://"):
		return openSentinel(rawURL, u)
	case strings.HasPrefix(rawURL, "redis-cluster://"):
		return openCluster(u)
	}
	// go-redis parses rawURL again: its errors quote the scheme, path or
	// query, never the user information (redact.ParseURL accepted it).
	opt, err := redis.ParseURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("parse redis URL %s: %w", redact.URL(rawURL), err)
	}
	return redis.NewClient(opt), nil
}

func openSentinel(rawURL string, u *url.URL) (redis.UniversalClient, error) {
	pass, _ := u.User.Password()
	q := u.Query()
	if q.Get("master") == "" {
		return nil, fmt.Errorf("parse redis sentinel URL %s: master is required", redact.URL(rawURL))
	}
	db := 0
	if v := q.Get("db"); v != "" {
		if _, err := fmt.Sscanf(v, "%d", &db); err != nil {
			return nil, fmt.Errorf("parse redis sentinel URL %s: bad db", redact.URL(rawURL))
		}
	}
	return redis.NewFailoverClient(&redis.FailoverOptions{
		MasterName:    q.Get("master"),
		SentinelAddrs: strings.Split(u.Host, ","),
		Password:      pass,
		DB:            db,
	}), nil
}

func openCluster(u *url.URL) (redis.UniversalClient, error) {
	pass, _ := u.User.Password()
	return redis.NewClusterClient(&redis.ClusterOptions{
		Addrs:    strings.Split(u.Host, ","),
		Password: pass,
	}), nil
}
