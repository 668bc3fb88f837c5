import CssBaseline from "@mui/material/CssBaseline";
import { ThemeProvider } from "@mui/material/styles";
import Box from "@mui/material/Box";
import CircularProgress from "@mui/material/CircularProgress";
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { lazy, Suspense, useEffect, type ReactNode } from "react";
import { BrowserRouter, Navigate, Route, Routes, useLocation } from "react-router";
import { ApiError, configureClient } from "../api/client";
import { AuthProvider, useAuth } from "./auth";
import type { AppConfig } from "./config";
import { Layout } from "./Layout";
import { theme } from "./theme";

// One chunk per page: the first page loads only what it shows.
const SignIn = lazy(() => import("../features/signin/SignInPage"));
const OidcCallback = lazy(() => import("../features/signin/OidcCallback"));
const Overview = lazy(() => import("../features/overview/OverviewPage"));
const Usage = lazy(() => import("../features/usage/UsagePage"));
const Transactions = lazy(() => import("../features/transactions/TransactionsPage"));
const Account = lazy(() => import("../features/account/AccountPage"));
const Coupons = lazy(() => import("../features/coupons/CouponsPage"));
const Plans = lazy(() => import("../features/plans/PlansPage"));
const AdminAccounts = lazy(() => import("../features/admin/AccountsPage"));
const AdminAccount = lazy(() => import("../features/admin/AccountDetailPage"));
const AdminCoupons = lazy(() => import("../features/admin/CouponsAdminPage"));
const AdminPlatform = lazy(() => import("../features/admin/PlatformPage"));
const Forbidden = lazy(() => import("../features/signin/ForbiddenPage"));

const queryClient = new QueryClient({
  defaultOptions: {
    queries: {
      staleTime: 15_000,
      refetchOnWindowFocus: false,
      // Retry what may pass on a second try; never a refusal.
      retry: (count, error) => count < 2 && !(error instanceof ApiError && error.httpStatus >= 400 && error.httpStatus < 500),
    },
  },
});

function Loading() {
  return (
    <Box sx={{ display: "grid", placeItems: "center", minHeight: 240 }} aria-busy="true">
      <CircularProgress aria-label="Loading" />
    </Box>
  );
}

function RequireAuth({ children }: { children: ReactNode }) {
  const { session } = useAuth();
  const location = useLocation();
  if (!session) {
    const next = location.pathname + location.search;
    return <Navigate to={`/signin?next=${encodeURIComponent(next)}`} replace />;
  }
  return <>{children}</>;
}

function RequireAdmin({ children }: { children: ReactNode }) {
  const { isAdmin } = useAuth();
  return <RequireAuth>{isAdmin ? children : <Forbidden />}</RequireAuth>;
}

/** Users land on their overview; admin-only sessions (no credit account) on the accounts list. */
function Home() {
  const { session, isAdmin } = useAuth();
  const adminOnly = isAdmin && !(session?.roles.includes("user") ?? false);
  return <Navigate to={adminOnly ? "/admin/credits" : "/credits"} replace />;
}

function SessionWiring() {
  const { expire } = useAuth();
  useEffect(() => {
    configureClient({
      onUnauthenticated: () => {
        queryClient.clear();
        expire("Your session has ended. Please sign in again to continue where you were.");
      },
    });
  }, [expire]);
  return null;
}

export function App({ config }: { config: AppConfig }) {
  return (
    <ThemeProvider theme={theme}>
      <CssBaseline />
      <QueryClientProvider client={queryClient}>
        <AuthProvider config={config}>
          <SessionWiring />
          <BrowserRouter>
            <Suspense fallback={<Loading />}>
              <Routes>
                <Route path="/signin" element={<SignIn />} />
                <Route path="/auth/callback" element={<OidcCallback />} />
                <Route element={<Layout />}>
                  <Route path="/" element={<Home />} />
                  <Route
                    path="/credits"
                    element={
                      <RequireAuth>
                        <Overview />
                      </RequireAuth>
                    }
                  />
                  <Route
                    path="/credits/usage"
                    element={
                      <RequireAuth>
                        <Usage />
                      </RequireAuth>
                    }
                  />
                  <Route
                    path="/credits/transactions"
                    element={
                      <RequireAuth>
                        <Transactions />
                      </RequireAuth>
                    }
                  />
                  <Route
                    path="/credits/account"
                    element={
                      <RequireAuth>
                        <Account />
                      </RequireAuth>
                    }
                  />
                  <Route
                    path="/credits/coupons"
                    element={
                      <RequireAuth>
                        <Coupons />
                      </RequireAuth>
                    }
                  />
                  <Route path="/credits/tiers" element={<Plans />} />
                  <Route
                    path="/admin/credits"
                    element={
                      <RequireAdmin>
                        <AdminAccounts />
                      </RequireAdmin>
                    }
                  />
                  <Route
                    path="/admin/credits/accounts/:userId"
                    element={
                      <RequireAdmin>
                        <AdminAccount />
                      </RequireAdmin>
                    }
                  />
                  <Route
                    path="/admin/coupons"
                    element={
                      <RequireAdmin>
                        <AdminCoupons />
                      </RequireAdmin>
                    }
                  />
                  <Route
                    path="/admin/platform"
                    element={
                      <RequireAdmin>
                        <AdminPlatform />
                      </RequireAdmin>
                    }
                  />
                  <Route path="*" element={<Navigate to="/credits" replace />} />
                </Route>
              </Routes>
            </Suspense>
          </BrowserRouter>
        </AuthProvider>
      </QueryClientProvider>
    </ThemeProvider>
  );
}
