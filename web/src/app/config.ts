// Runtime settings the gateway serves at /app-config.json (rendered by tools/web.py
// from the operator's environment), so one build runs in every environment.

export interface OidcSettings {
  authority: string;
  clientId: string;
  scope: string;
}

export interface AppConfig {
  /** The development sign-in exists (local stack only). */
  devSignIn: boolean;
  /** OIDC authorization code + PKCE, when an issuer is configured. */
  oidc: OidcSettings | null;
  /** Where "Select plan" goes; `{tier}` is replaced by the tier id. Empty: explain instead. */
  checkoutUrl: string;
}

const fallback: AppConfig = { devSignIn: false, oidc: null, checkoutUrl: "" };

export async function loadConfig(): Promise<AppConfig> {
  try {
    const response = await fetch("/app-config.json", { headers: { accept: "application/json" } });
    if (!response.ok) return fallback;
    const raw = (await response.json()) as Partial<AppConfig>;
    return {
      devSignIn: raw.devSignIn === true,
      oidc: raw.oidc && typeof raw.oidc.authority === "string" ? raw.oidc : null,
      checkoutUrl: typeof raw.checkoutUrl === "string" ? raw.checkoutUrl : "",
    };
  } catch {
    return fallback;
  }
}
