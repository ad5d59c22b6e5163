package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

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
		&cobra.Command{Use: "status", Short: "List migrations and whether they are applied", Args: cobra.NoArgs,
			RunE: func(c *cobra.Command, _ []string) error {
				return withStore(c.Context(), false, func(st *store.Store) error { return printMigrations(c, st) })
			}},
	)
	return cmd
}

func printMigrations(c *cobra.Command, st *store.Store) error {
	list, err := st.MigrationStatus(c.Context())
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(c.OutOrStdout(), 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tNAME\tAPPLIED")
	for _, m := range list {
		fmt.Fprintf(tw, "%d\t%s\t%v\n", m.Version, m.Name, m.Applied)
	}
	return tw.Flush()
}

func projectsCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "projects", Short: "Manage projects"}
	cmd.AddCommand(
		&cobra.Command{Use: "create NAME", Short: "Create a project", Args: cobra.ExactArgs(1),
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
		&cobra.Command{Use: "list", Short: "List projects", Args: cobra.NoArgs,
			RunE: func(c *cobra.Command, _ []string) error {
				return withStore(c.Context(), true, func(st *store.Store) error {
					ps, err := st.ListProjects(c.Context())
					if err != nil {
						return err
					}
					tw := tabwriter.NewWriter(c.OutOrStdout(), 0, 4, 2, ' ', 0)
					fmt.Fprintln(tw, "ID\tNAME\tCREATED")
					for _, p := range ps {
						fmt.Fprintf(tw, "%s\t%s\t%s\n", p.ID, p.Name, p.CreatedAt.UTC().Format(time.RFC3339))
					}
					return tw.Flush()
				})
			}},
	)
	return cmd
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
					return fmt.Errorf("unknown scope %q (known: %v)", s, apikey.AllScopes())
				}
			}
			return withStore(c.Context(), true, func(st *store.Store) error {
				p, err := st.ProjectByName(c.Context(), project)
				if err != nil {
					return fmt.Errorf("project %q: %w", project, err)
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
	c.Flags().StringArrayVar(&scopes, "scope", nil, "a scope (repeatable): "+fmt.Sprint(apikey.AllScopes()))
	return c
}

func keysListCmd() *cobra.Command {
	var project string
	c := &cobra.Command{Use: "list", Short: "List keys (never their secrets)", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return withStore(c.Context(), true, func(st *store.Store) error {
				projectID := ""
				if project != "" {
					p, err := st.ProjectByName(c.Context(), project)
					if err != nil {
						return fmt.Errorf("project %q: %w", project, err)
					}
					projectID = p.ID
				}
				keys, err := st.ListKeys(c.Context(), projectID)
				if err != nil {
					return err
				}
				tw := tabwriter.NewWriter(c.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tNAME\tPROJECT\tSCOPES\tREVOKED")
				for _, k := range keys {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%v\n", k.ID, k.Name, k.ProjectID, k.Scopes, k.RevokedAt != nil)
				}
				return tw.Flush()
			})
		}}
	c.Flags().StringVar(&project, "project", "", "only this project's keys")
	return c
}

// broadcastRevocation tells running API replicas to drop a revoked key
// from their caches at once. Without Redis they drop it within the cache
// TTL (seconds).
func broadcastRevocation(ctx context.Context, id string) error {
	cfg, err := loadConfig()
	if err != nil {
		return err
	}
	rdb, err := queue.OpenRedis(cfg.RedisURL)
	if err != nil {
		return nil
	}
	defer rdb.Close()
	if err := queue.NewRevocations(rdb).Publish(ctx, id); err != nil {
		fmt.Fprintln(os.Stderr, "mailgate: warning: could not broadcast the revocation; running API servers refuse the key within seconds:", err)
	}
	return nil
}

func keysRevokeCmd() *cobra.Command {
	return &cobra.Command{Use: "revoke ID", Short: "Revoke a key (refused at once)", Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			err := withStore(c.Context(), true, func(st *store.Store) error {
				return st.RevokeKey(c.Context(), args[0])
			})
			if err != nil {
				return err
			}
			return broadcastRevocation(c.Context(), args[0])
		}}
}
