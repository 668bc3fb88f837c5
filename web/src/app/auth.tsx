// Who is signed in. Tokens live in memory only (never localStorage): a reload
// asks to sign in again, and the page the user was on is kept in ?next=.
// Two ways in: the development sign-in of the local stack (POST /dev/token,
// which exists only there), or OIDC authorization code + PKCE (oidc-client-ts)
// with silent renewal; when renewal fails the user is asked to sign in again.
import { InMemoryWebStorage, UserManager, WebStorageStateStore, type User } from "oidc-client-ts";
import { createContext, useCallback, useContext, useEffect, useMemo, useState, type ReactNode } from "react";
import { configureClient } from "../api/client";
import type { AppConfig } from "./config";

export type Role = "user" | "admin";

export interface Session {
  userId: string;
  roles: string[];
  token: string;
  /** Milliseconds since the epoch. */
  expiresAt: number;
  via: "dev" | "oidc";
}

interface Claims {
  sub?: string;
  exp?: number;
  realm_access?: { roles?: unknown };
}

export function decodeClaims(token: string): Claims {
  const part = token.split(".")[1];
  if (!part) return {};
  try {
    const base64 = part
      .replace(/-/g, "+")
      .replace(/_/g, "/")
      .padEnd(Math.ceil(part.length / 4) * 4, "=");
    return JSON.parse(atob(base64)) as Claims;
  } catch {
    return {};
  }
}

/**
 * The bearer token for the API: the access token when it is a JWT (Keycloak's are);
 * otherwise the ID token, whose audience is this dashboard's client — the gateway
 * verifies JWTs only, and some providers issue opaque access tokens.
 */
function apiToken(user: User): string {
  const isJwt = (t: string | undefined) => !!t && t.split(".").length === 3;
  if (isJwt(user.access_token)) return user.access_token;
  return user.id_token ?? user.access_token;
}

function sessionFrom(token: string, via: Session["via"]): Session {
  const claims = decodeClaims(token);
  const roles = Array.isArray(claims.realm_access?.roles)
    ? claims.realm_access.roles.filter((r): r is string => typeof r === "string")
    : [];
  return {
    userId: claims.sub ?? "",
    roles,
    token,
    expiresAt: (claims.exp ?? 0) * 1000,
    via,
  };
}

interface AuthState {
  config: AppConfig;
  session: Session | null;
  /** Why the user was sent back to sign in (expired, signed out elsewhere), if so. */
  notice: string;
  isAdmin: boolean;
  signInDev: (userId: string, role: Role) => Promise<void>;
  signInOidc: (next: string) => Promise<void>;
  completeOidc: () => Promise<string>;
  signOut: () => Promise<void>;
  expire: (notice: string) => void;
}

const AuthContext = createContext<AuthState | null>(null);

let currentToken: string | null = null;

function oidcManager(config: AppConfig): UserManager | null {
  if (!config.oidc) return null;
  const origin = window.location.origin;
  return new UserManager({
    authority: config.oidc.authority,
    client_id: config.oidc.clientId,
    scope: config.oidc.scope,
    redirect_uri: `${origin}/auth/callback`,
    silent_redirect_uri: `${origin}/auth/silent`,
    post_logout_redirect_uri: `${origin}/signin`,
    response_type: "code",
    automaticSilentRenew: true,
    // Tokens in memory only; the PKCE verifier and state survive the redirect in sessionStorage.
    userStore: new WebStorageStateStore({ store: new InMemoryWebStorage() }),
  });
}

export function AuthProvider({ config, children }: { config: AppConfig; children: ReactNode }) {
  const [session, setSession] = useState<Session | null>(null);
  const [notice, setNotice] = useState("");
  const manager = useMemo(() => oidcManager(config), [config]);

  const adopt = useCallback((next: Session | null) => {
    currentToken = next?.token ?? null;
    setSession(next);
    if (next) setNotice("");
  }, []);

  const expire = useCallback((why: string) => {
    currentToken = null;
    setSession(null);
    setNotice(why);
  }, []);

  useEffect(() => {
    if (!manager) return;
    const loaded = (user: User) => adopt(sessionFrom(apiToken(user), "oidc"));
    const failed = () => expire("Your session could not be renewed. Please sign in again.");
    manager.events.addUserLoaded(loaded);
    manager.events.addSilentRenewError(failed);
    manager.events.addAccessTokenExpired(failed);
    return () => {
      manager.events.removeUserLoaded(loaded);
      manager.events.removeSilentRenewError(failed);
      manager.events.removeAccessTokenExpired(failed);
    };
  }, [manager, adopt, expire]);

  // Development tokens cannot be renewed: say so when one runs out.
  useEffect(() => {
    if (!session || session.via !== "dev" || !session.expiresAt) return;
    const timer = window.setTimeout(
      () => expire("Your development session has expired. Please sign in again."),
      Math.max(0, session.expiresAt - Date.now()),
    );
    return () => window.clearTimeout(timer);
  }, [session, expire]);

  const value = useMemo<AuthState>(
    () => ({
      config,
      session,
      notice,
      isAdmin: session?.roles.includes("admin") ?? false,
      async signInDev(userId, role) {
        const response = await fetch("/dev/token", {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ user_id: userId, role }),
        });
        const body = (await response.json().catch(() => ({}))) as { access_token?: string; message?: string };
        if (!response.ok || !body.access_token) {
          throw new Error(body.message ?? "The development sign-in is not available on this server.");
        }
        adopt(sessionFrom(body.access_token, "dev"));
      },
      async signInOidc(next) {
        if (!manager) throw new Error("No OIDC issuer is configured.");
        await manager.signinRedirect({ state: next });
      },
      async completeOidc() {
        if (!manager) throw new Error("No OIDC issuer is configured.");
        const user = await manager.signinRedirectCallback();
        adopt(sessionFrom(apiToken(user), "oidc"));
        return typeof user.state === "string" && user.state.startsWith("/") ? user.state : "/credits";
      },
      async signOut() {
        const via = session?.via;
        adopt(null);
        setNotice("");
        if (via === "oidc" && manager) {
          await manager.removeUser();
          await manager.signoutRedirect().catch(() => undefined);
        }
      },
      expire,
    }),
    [config, session, notice, manager, adopt, expire],
  );

  return <AuthContext.Provider value={value}>{children}</AuthContext.Provider>;
}

export function useAuth(): AuthState {
  const found = useContext(AuthContext);
  if (!found) throw new Error("useAuth outside AuthProvider");
  return found;
}

// The API client reads the token from here on every call.
configureClient({ token: () => currentToken });

/** Runs the OIDC silent-renew callback inside its hidden iframe (no React there). */
export async function silentCallback(config: AppConfig): Promise<void> {
  await oidcManager(config)?.signinSilentCallback();
}
