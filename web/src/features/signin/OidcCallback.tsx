import Alert from "@mui/material/Alert";
import Box from "@mui/material/Box";
import CircularProgress from "@mui/material/CircularProgress";
import { useEffect, useRef, useState } from "react";
import { Link, useNavigate } from "react-router";
import { useAuth } from "../../app/auth";
import { errorText } from "../../components/ErrorAlert";

/** Where the OIDC provider sends the browser back with the authorization code. */
export default function OidcCallback() {
  const { completeOidc } = useAuth();
  const navigate = useNavigate();
  const [error, setError] = useState("");
  const started = useRef(false);
  useEffect(() => {
    if (started.current) return; // the code can be exchanged once only
    started.current = true;
    completeOidc()
      .then((next) => navigate(next, { replace: true }))
      .catch((e: unknown) => setError(errorText(e)));
  }, [completeOidc, navigate]);
  return (
    <Box component="main" sx={{ display: "grid", placeItems: "center", minHeight: "60vh", p: 2 }}>
      {error ? (
        <Alert severity="error" role="alert">
          Sign-in failed: {error} <Link to="/signin">Try again</Link>
        </Alert>
      ) : (
        <CircularProgress aria-label="Completing sign-in" />
      )}
    </Box>
  );
}
