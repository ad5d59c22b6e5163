package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"

	"github.com/mailgate/mailgate/api"
	"github.com/mailgate/mailgate/apikey"
	"github.com/mailgate/mailgate/queue"
	"github.com/mailgate/mailgate/store"
)

// withStore runs fn with the configured database, migrated when
// auto-migration is on.
func withStore(ctx context.Context, migrate bool, fn func(*store.Store) error) error {
	cfg, err := loadConfig()
	if err != nil {
		return err
	}
	cfg.AutoMigrate = cfg.AutoMigrate && migrate
	st, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	return fn(st)
}

func migrateCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "migrate", Short: "Database schema migrations"}
	cmd.AddCommand(
		&cobra.Command{Use: "up", Short: "Apply every pending migration", Args: cobra.NoArgs,
			RunE: func(c *cobra.Command, _ []string) error {
				return withStore(c.Context(), false, func(st *store.Store) error { return st.MigrateUp(c.Context()) })
			}},
		&cobra.Command{Use: "down", Short: "Roll back the latest migration", Args: cobra.NoArgs,
			RunE: func(c *cobra.Command, _ []string) error {
				return withStore(c.Context(), false, func(st *store.Store) error { return st.MigrateDown(c.Context()) })
			}},
		migrateStatusCmd(),
	)
	return cmd
}

// migrationView is one line of `migrate status`.
type migrationView struct {
	Version int64  `json:"version"`
	Name    string `json:"name"`
	Applied bool   `json:"applied"`
}

func migrateStatusCmd() *cobra.Command {
	var asJSON bool
	c := &cobra.Command{Use: "status", Short: "List migrations and whether they are applied", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return withStore(c.Context(), false, func(st *store.Store) error {
				list, err := st.MigrationStatus(c.Context())
				if err != nil {
					return err
				}
				views := make([]migrationView, len(list))
				for i, m := range list {
					views[i] = migrationView{Version: m.Version, Name: m.Name, Applied: m.Applied}
				}
				return printList(c, asJSON, views, "VERSION\tNAME\tAPPLIED", func(m migrationView) string {
					return fmt.Sprintf("%d\t%s\t%v", m.Version, m.Name, m.Applied)
				})
			})
		}}
	jsonFlag(c, &asJSON)
	return c
}

func projectsCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "projects", Short: "Manage projects"}
	cmd.AddCommand(
		&cobra.Command{Use: "create NAME", Short: "Create a project and print its id", Args: cobra.ExactArgs(1),
			RunE: func(c *cobra.Command, args []string) error {
				return withStore(c.Context(), true, func(st *store.Store) error {
					p, err := st.CreateProject(c.Context(), args[0])
					if errors.Is(err, store.ErrConflict) {
						return fmt.Errorf("project %q exists", args[0])
					}
					if err != nil {
						return err
					}
					fmt.Fprintln(c.OutOrStdout(), p.ID)
					return nil
				})
			}},
		projectsListCmd(),
	)
	return cmd
}

// projectView is one line of `projects list`.
type projectView struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	CreatedAt string `json:"created_at"`
}

func projectsListCmd() *cobra.Command {
	var asJSON bool
	c := &cobra.Command{Use: "list", Short: "List projects", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return withStore(c.Context(), true, func(st *store.Store) error {
				ps, err := st.ListProjects(c.Context())
				if err != nil {
					return err
				}
				views := make([]projectView, len(ps))
				for i, p := range ps {
					views[i] = projectView{ID: p.ID, Name: p.Name, CreatedAt: p.CreatedAt.UTC().Format(time.RFC3339)}
				}
				return printList(c, asJSON, views, "ID\tNAME\tCREATED", func(p projectView) string {
					return p.ID + "\t" + p.Name + "\t" + p.CreatedAt
				})
			})
		}}
	jsonFlag(c, &asJSON)
	return c
}

func keysCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "keys", Short: "Manage API keys"}
	cmd.AddCommand(keysCreateCmd(), keysListCmd(), keysRevokeCmd())
	return cmd
}

// keysCreateCmd prints the new token alone on one stdout line, once.
func keysCreateCmd() *cobra.Command {
	var name, project string
	var scopes []string
	c := &cobra.Command{Use: "create", Short: "Create a key and print its token (shown once)", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if name == "" || len(scopes) == 0 {
				return errors.New("keys create needs --name and at least one --scope")
			}
			for _, s := range scopes {
				if !apikey.ValidScope(s) {
					return fmt.Errorf("unknown scope %q (known: %s)", s, strings.Join(apikey.AllScopes(), ", "))
				}
			}
			return withStore(c.Context(), true, func(st *store.Store) error {
				p, err := st.ProjectByName(c.Context(), project)
				if err != nil {
					return err // it names the project
				}
				k, token, err := api.NewKey(p.ID, name, scopes, time.Now())
				if err != nil {
					return err
				}
				if err := st.CreateKey(c.Context(), k); err != nil {
					return err
				}
				fmt.Fprintln(c.OutOrStdout(), token)
				return nil
			})
		}}
	c.Flags().StringVar(&name, "name", "", "a name for the key")
	c.Flags().StringVar(&project, "project", store.DefaultProjectName, "the project the key belongs to")
	c.Flags().StringArrayVar(&scopes, "scope", nil, "a scope (repeatable): "+strings.Join(apikey.AllScopes(), ", "))
	return c
}

// keyView is one line of `keys list`: never the secret.
type keyView struct {
	ID        string   `json:"id"`
	Name      string   `json:"name"`
	Project   string   `json:"project"`
	Scopes    []string `json:"scopes"`
	CreatedAt string   `json:"created_at"`
	RevokedAt string   `json:"revoked_at,omitempty"`
}

func keysListCmd() *cobra.Command {
	var project string
	var asJSON bool
	c := &cobra.Command{Use: "list", Short: "List keys (never their secrets)", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return withStore(c.Context(), true, func(st *store.Store) error {
				views, err := listKeys(c.Context(), st, project)
				if err != nil {
					return err
				}
				return printList(c, asJSON, views, "ID\tNAME\tPROJECT\tSCOPES\tCREATED\tREVOKED", func(k keyView) string {
					return strings.Join([]string{k.ID, k.Name, k.Project, strings.Join(k.Scopes, ","),
						k.CreatedAt, orDash(k.RevokedAt)}, "\t")
				})
			})
		}}
	c.Flags().StringVar(&project, "project", "", "only this project's keys")
	jsonFlag(c, &asJSON)
	return c
}

// listKeys lists the keys of the project named project (all projects when
// empty), each with its project's name.
func listKeys(ctx context.Context, st *store.Store, project string) ([]keyView, error) {
	projects, err := st.ListProjects(ctx)
	if err != nil {
		return nil, err
	}
	names := map[string]string{}
	projectID := ""
	for _, p := range projects {
		names[p.ID] = p.Name
		if p.Name == project {
			projectID = p.ID
		}
	}
	if project != "" && projectID == "" {
		return nil, fmt.Errorf("project %q: %w", project, store.ErrNotFound)
	}
	keys, err := st.ListKeys(ctx, projectID)
	if err != nil {
		return nil, err
	}
	views := make([]keyView, len(keys))
	for i, k := range keys {
		views[i] = keyView{ID: k.ID, Name: k.Name, Project: names[k.ProjectID], Scopes: k.Scopes,
			CreatedAt: k.CreatedAt.UTC().Format(time.RFC3339)}
		if k.RevokedAt != nil {
			views[i].RevokedAt = k.RevokedAt.UTC().Format(time.RFC3339)
		}
	}
	return views, nil
}

// orDash is s, or "-" for an empty table cell.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// broadcastRevocation tells running API replicas to drop a revoked key
// from their caches at once; when it cannot, it warns that they refuse the
// key within their cache TTL (seconds).
func broadcastRevocation(ctx context.Context, w io.Writer, id string) {
	cfg, err := loadConfig()
	if err == nil {
		var rdb redis.UniversalClient
		if rdb, err = queue.OpenRedis(cfg.RedisURL); err == nil {
			err = queue.NewRevocations(rdb).Publish(ctx, id)
			rdb.Close()
		}
	}
	if err != nil {
		fmt.Fprintln(w, "mailgate: warning: could not tell running API servers; they refuse the key within seconds:", err)
	}
}

func keysRevokeCmd() *cobra.Command {
	return &cobra.Command{Use: "revoke ID", Short: "Revoke a key (refused at once)", Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			var k store.APIKey
			err := withStore(c.Context(), true, func(st *store.Store) error {
				var err error
				if k, err = st.KeyByID(c.Context(), args[0]); err != nil {
					return err // it names the key
				}
				return st.RevokeKey(c.Context(), k.ID)
			})
			if err != nil {
				return err
			}
			if k.RevokedAt != nil {
				fmt.Fprintf(c.OutOrStdout(), "key %s (%s) was already revoked at %s\n", k.ID, k.Name,
					k.RevokedAt.UTC().Format(time.RFC3339))
				return nil
			}
			broadcastRevocation(c.Context(), c.ErrOrStderr(), k.ID)
			fmt.Fprintf(c.OutOrStdout(), "revoked key %s (%s)\n", k.ID, k.Name)
			return nil
		}}
}
