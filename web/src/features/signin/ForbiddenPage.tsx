import Alert from "@mui/material/Alert";
import { Link } from "react-router";

/** Shown instead of an admin page to someone without the admin role (the API refuses them anyway). */
export default function ForbiddenPage() {
  return (
    <Alert severity="warning" role="alert">
      This page is for administrators only. <Link to="/credits">Back to your overview</Link>
    </Alert>
  );
}
