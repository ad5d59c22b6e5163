package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/mailgate/mailgate/dkimkey"
)

// dkimCmd is `mailgate dkim keygen`: a DKIM key pair made offline, without
// configuration, for keys managed outside mailgate's database.
func dkimCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "dkim", Short: "DKIM keys"}
	cmd.AddCommand(keygenCmd())
	return cmd
}

type keygenOptions struct {
	algorithm, selector, domain, out string
}

func keygenCmd() *cobra.Command {
	var o keygenOptions
	cmd := &cobra.Command{
		Use:   "keygen",
		Short: "Make a DKIM key pair: the PEM private key on stdout (or --out), the DNS TXT record on stderr",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return runKeygen(c.OutOrStdout(), c.ErrOrStderr(), o, time.Now())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.algorithm, "algorithm", dkimkey.RSA, "rsa (2048 bits) or ed25519")
	f.StringVar(&o.selector, "selector", "", `selector of the record (default "mg" + year and month, e.g. mg202611)`)
	f.StringVar(&o.domain, "domain", "", "domain, to print the record's full name (default: the name relative to the domain)")
	f.StringVar(&o.out, "out", "", "write the private key to this file (mode 0600, must not exist) instead of stdout")
	return cmd
}

// runKeygen generates the key, writes the private key and prints the
// record as "<name> TXT <value>".
func runKeygen(stdout, stderr io.Writer, o keygenOptions, now time.Time) error {
	if o.selector == "" {
		o.selector = "mg" + now.UTC().Format("200601")
	}
	key, err := dkimkey.GenerateKey(o.algorithm)
	if err != nil {
		return err
	}
	record, err := dkimkey.DNSRecordValue(key.Public())
	if err != nil {
		return err
	}
	pemKey, err := dkimkey.MarshalPrivateKey(key)
	if err != nil {
		return err
	}
	if err := writeKey(stdout, o.out, pemKey); err != nil {
		return err
	}
	name := o.selector + "._domainkey"
	if o.domain != "" {
		name += "." + o.domain
	}
	_, err = fmt.Fprintf(stderr, "%s TXT %s\n", name, record)
	return err
}

// writeKey writes the PEM key to path (created with mode 0600, never
// overwriting) or, without a path, to stdout.
func writeKey(stdout io.Writer, path string, pemKey []byte) error {
	if path == "" {
		_, err := stdout.Write(pemKey)
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("write private key: %w", err)
	}
	if _, err := f.Write(pemKey); err != nil {
		_ = f.Close()
		return fmt.Errorf("write private key %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write private key %s: %w", path, err)
	}
	return nil
}
