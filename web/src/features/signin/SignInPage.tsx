import AccountBalanceWalletIcon from "@mui/icons-material/AccountBalanceWallet";
import Alert from "@mui/material/Alert";
import Box from "@mui/material/Box";
import Button from "@mui/material/Button";
import Card from "@mui/material/Card";
import CardContent from "@mui/material/CardContent";
import Divider from "@mui/material/Divider";
import FormControl from "@mui/material/FormControl";
import FormControlLabel from "@mui/material/FormControlLabel";
import FormLabel from "@mui/material/FormLabel";
import Radio from "@mui/material/Radio";
import RadioGroup from "@mui/material/RadioGroup";
import TextField from "@mui/material/TextField";
import Typography from "@mui/material/Typography";
import { useState, type FormEvent } from "react";
import { Link as RouterLink, useNavigate, useSearchParams } from "react-router";
import { useAuth, type Role } from "../../app/auth";
import { errorText } from "../../components/ErrorAlert";

function safeNext(raw: string | null): string {
  // Only paths of this app: never an open redirect to another site.
  return raw && raw.startsWith("/") && !raw.startsWith("//") && !raw.startsWith("/signin") ? raw : "/";
}

export default function SignInPage() {
  const { config, signInDev, signInOidc, notice } = useAuth();
  const [params] = useSearchParams();
  const next = safeNext(params.get("next"));
  const navigate = useNavigate();
  const [userId, setUserId] = useState("alice");
  const [role, setRole] = useState<Role>("user");
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);

  async function devSubmit(event: FormEvent) {
    event.preventDefault();
    setBusy(true);
    setError("");
    try {
      await signInDev(userId.trim(), role);
      void navigate(next, { replace: true });
    } catch (failure) {
      setError(errorText(failure));
    } finally {
      setBusy(false);
    }
  }

  return (
    <Box component="main" sx={{ minHeight: "100vh", display: "grid", placeItems: "center", p: 2, bgcolor: "background.default" }}>
      <Card sx={{ width: "100%", maxWidth: 440 }}>
        <CardContent sx={{ p: { xs: 2.5, sm: 4 } }}>
          <Box sx={{ display: "flex", alignItems: "center", gap: 1, mb: 2 }}>
            <AccountBalanceWalletIcon color="primary" aria-hidden="true" />
            <Typography variant="h5" component="h1">
              Sign in to creditmeter
            </Typography>
          </Box>
          {notice ? (
            <Alert severity="info" sx={{ mb: 2 }}>
              {notice}
            </Alert>
          ) : null}
          {config.oidc ? (
            <Button
              fullWidth
              size="large"
              variant="contained"
              onClick={() => void signInOidc(next).catch((e: unknown) => setError(errorText(e)))}
            >
              Sign in with your organisation
            </Button>
          ) : null}
          {config.oidc && config.devSignIn ? <Divider sx={{ my: 3 }}>or</Divider> : null}
          {config.devSignIn ? (
            <Box component="form" onSubmit={(event: FormEvent) => void devSubmit(event)} aria-labelledby="dev-signin-title">
              <Alert severity="warning" sx={{ mb: 2 }}>
                <strong id="dev-signin-title">Development sign-in.</strong> For the local stack only: anyone can pick any user and role
                here. It does not exist in deployments.
              </Alert>
              <TextField
                label="User id"
                value={userId}
                onChange={(e) => setUserId(e.target.value)}
                fullWidth
                required
                autoFocus
                slotProps={{ htmlInput: { maxLength: 128, autoComplete: "username" } }}
                sx={{ mb: 2 }}
              />
              <FormControl sx={{ mb: 2 }}>
                <FormLabel id="role-label">Role</FormLabel>
                <RadioGroup row aria-labelledby="role-label" value={role} onChange={(e) => setRole(e.target.value as Role)}>
                  <FormControlLabel value="user" control={<Radio />} label="User" />
                  <FormControlLabel value="admin" control={<Radio />} label="Admin" />
                </RadioGroup>
              </FormControl>
              <Button
                type="submit"
                fullWidth
                size="large"
                variant={config.oidc ? "outlined" : "contained"}
                disabled={busy || !userId.trim()}
              >
                Sign in (development)
              </Button>
            </Box>
          ) : null}
          {!config.oidc && !config.devSignIn ? (
            <Alert severity="error">
              No sign-in is configured on this server. An operator must set DASHBOARD_OIDC_AUTHORITY (see the README).
            </Alert>
          ) : null}
          {error ? (
            <Alert severity="error" role="alert" sx={{ mt: 2 }}>
              {error}
            </Alert>
          ) : null}
          <Typography variant="body2" sx={{ mt: 3, textAlign: "center" }}>
            <RouterLink to="/credits/tiers">See plans and pricing</RouterLink>
          </Typography>
        </CardContent>
      </Card>
    </Box>
  );
}
