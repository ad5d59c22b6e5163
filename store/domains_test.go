package store

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func dkimKey(selector, alg string) DKIMKey {
	return DKIMKey{Selector: selector, Algorithm: alg, PrivateKeySealed: []byte("v1:00000000:" + selector),
		PublicRecord: "v=DKIM1; k=" + alg + "; p=" + selector}
}

func TestDomains(t *testing.T) {
	engines(t, func(t *testing.T, s *Store, clk *clock) {
		ctx := context.Background()
		other, err := s.CreateProject(ctx, "other")
		if err != nil {
			t.Fatal(err)
		}
		shop, err := s.CreateDomain(ctx, Domain{ProjectID: DefaultProjectID, Name: "shop.example",
			Keys: []DKIMKey{dkimKey("mg202611r", "rsa"), dkimKey("mg202611e", "ed25519")}})
		if err != nil {
			t.Fatalf("create: %v", err)
		}
		if shop.ID == "" || !shop.CreatedAt.Equal(clk.Now()) || shop.Keys[0].ID == "" || !shop.Keys[1].CreatedAt.Equal(clk.Now()) {
			t.Errorf("create did not fill ids and times: %+v", shop)
		}
		checkDomain(t, s, DefaultProjectID, shop)

		if _, err := s.CreateDomain(ctx, Domain{ProjectID: DefaultProjectID, Name: "shop.example",
			Keys: []DKIMKey{dkimKey("x", "rsa")}}); !errors.Is(err, ErrConflict) {
			t.Errorf("duplicate = %v, want ErrConflict", err)
		}
		clk.Advance(time.Minute)
		alpha, err := s.CreateDomain(ctx, Domain{ProjectID: DefaultProjectID, Name: "alpha.example",
			Keys: []DKIMKey{dkimKey("s1", "ed25519")}})
		if err != nil {
			t.Fatal(err)
		}
		theirs, err := s.CreateDomain(ctx, Domain{ProjectID: other.ID, Name: "shop.example",
			Keys: []DKIMKey{dkimKey("s1", "rsa")}})
		if err != nil {
			t.Fatalf("same name in another project: %v", err)
		}

		list, err := s.ListDomains(ctx, DefaultProjectID)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]Domain{alpha, shop}, list); diff != "" {
			t.Errorf("ListDomains (-want +got):\n%s", diff)
		}
		checkDomain(t, s, other.ID, theirs)
		if _, err := s.GetDomain(ctx, other.ID, "alpha.example"); !errors.Is(err, ErrNotFound) {
			t.Errorf("another project's domain = %v, want ErrNotFound", err)
		}
		checkRegistered(t, s, DefaultProjectID, "shop.example", true)
		checkRegistered(t, s, other.ID, "alpha.example", false)
		checkRegistered(t, s, DefaultProjectID, "nope.example", false)

		if err := s.DeleteDomain(ctx, DefaultProjectID, "shop.example"); err != nil {
			t.Fatalf("delete: %v", err)
		}
		if err := s.DeleteDomain(ctx, DefaultProjectID, "shop.example"); !errors.Is(err, ErrNotFound) {
			t.Errorf("second delete = %v, want ErrNotFound", err)
		}
		checkRegistered(t, s, DefaultProjectID, "shop.example", false)
		checkSigning(t, s, DefaultProjectID, "shop.example", nil)
		checkDomain(t, s, other.ID, theirs)
	})
}

func TestDKIMRotation(t *testing.T) {
	engines(t, func(t *testing.T, s *Store, clk *clock) {
		ctx := context.Background()
		d, err := s.CreateDomain(ctx, Domain{ProjectID: DefaultProjectID, Name: "shop.example",
			Keys: []DKIMKey{dkimKey("a-r", "rsa"), dkimKey("a-e", "ed25519")}})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.RetireDKIMKey(ctx, DefaultProjectID, "shop.example", "a-r"); !errors.Is(err, ErrLastActiveKey) {
			t.Errorf("retire the only rsa key = %v, want ErrLastActiveKey", err)
		}
		clk.Advance(time.Hour)
		if _, err := s.AddDKIMKeys(ctx, DefaultProjectID, "shop.example",
			[]DKIMKey{dkimKey("b-r", "rsa"), dkimKey("a-e", "ed25519")}); !errors.Is(err, ErrConflict) {
			t.Errorf("reused selector = %v, want ErrConflict", err)
		}
		checkDomain(t, s, DefaultProjectID, d) // nothing of the failed rotation is kept
		rotated, err := s.AddDKIMKeys(ctx, DefaultProjectID, "shop.example",
			[]DKIMKey{dkimKey("b-r", "rsa"), dkimKey("b-e", "ed25519")})
		if err != nil {
			t.Fatalf("rotate: %v", err)
		}
		if got := selectors(rotated.Keys); !cmp.Equal(got, []string{"a-e", "a-r", "b-e", "b-r"}) {
			t.Errorf("keys after rotation %v", got)
		}
		checkSigning(t, s, DefaultProjectID, "shop.example", []string{"a-e", "a-r", "b-e", "b-r"})

		clk.Advance(time.Hour)
		retiredAt := clk.Now()
		if err := s.RetireDKIMKey(ctx, DefaultProjectID, "shop.example", "a-r"); err != nil {
			t.Fatalf("retire: %v", err)
		}
		if err := s.RetireDKIMKey(ctx, DefaultProjectID, "shop.example", "a-r"); !errors.Is(err, ErrNotFound) {
			t.Errorf("retire again = %v, want ErrNotFound", err)
		}
		if err := s.RetireDKIMKey(ctx, DefaultProjectID, "shop.example", "b-r"); !errors.Is(err, ErrLastActiveKey) {
			t.Errorf("retire the new rsa key too = %v, want ErrLastActiveKey", err)
		}
		if _, err := s.AddDKIMKeys(ctx, DefaultProjectID, "nope.example", []DKIMKey{dkimKey("c", "rsa")}); !errors.Is(err, ErrNotFound) {
			t.Errorf("rotate unknown domain = %v, want ErrNotFound", err)
		}
		checkSigning(t, s, DefaultProjectID, "shop.example", []string{"a-e", "b-e", "b-r"})
		got, err := s.GetDomain(ctx, DefaultProjectID, "shop.example")
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range got.Keys {
			if k.Selector == "a-r" && (k.RetiredAt == nil || !k.RetiredAt.Equal(retiredAt)) {
				t.Errorf("a-r RetiredAt = %v, want %v", k.RetiredAt, retiredAt)
			}
		}
	})
}

func selectors(keys []DKIMKey) []string {
	out := []string{}
	for _, k := range keys {
		out = append(out, k.Selector)
	}
	return out
}

func checkDomain(t *testing.T, s *Store, projectID string, want Domain) {
	t.Helper()
	got, err := s.GetDomain(context.Background(), projectID, want.Name)
	if err != nil {
		t.Fatalf("get %s: %v", want.Name, err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("GetDomain (-want +got):\n%s", diff)
	}
}

func checkRegistered(t *testing.T, s *Store, projectID, name string, want bool) {
	t.Helper()
	got, err := s.SenderDomain(context.Background(), projectID, name)
	if err != nil || got.Registered != want {
		t.Errorf("SenderDomain(%s).Registered = %v, %v; want %v", name, got.Registered, err, want)
	}
}

// checkSigning: want nil means the domain is not registered.
func checkSigning(t *testing.T, s *Store, projectID, name string, want []string) {
	t.Helper()
	sd, err := s.SigningKeys(context.Background(), projectID, name)
	keys, registered := sd.Keys, sd.Registered
	if err != nil {
		t.Fatalf("signing keys: %v", err)
	}
	if registered != (want != nil) {
		t.Errorf("SigningKeys(%s) registered %v, want %v", name, registered, want != nil)
	}
	if want == nil {
		want = []string{}
	}
	if diff := cmp.Diff(want, selectors(keys)); diff != "" {
		t.Errorf("SigningKeys selectors (-want +got):\n%s", diff)
	}
}
