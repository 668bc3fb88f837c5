import AccountBalanceWalletIcon from "@mui/icons-material/AccountBalanceWallet";
import AdminPanelSettingsIcon from "@mui/icons-material/AdminPanelSettings";
import BarChartIcon from "@mui/icons-material/BarChart";
import CardGiftcardIcon from "@mui/icons-material/CardGiftcard";
import DashboardIcon from "@mui/icons-material/Dashboard";
import InsightsIcon from "@mui/icons-material/Insights";
import KeyIcon from "@mui/icons-material/Key";
import LocalOfferIcon from "@mui/icons-material/LocalOffer";
import MenuIcon from "@mui/icons-material/Menu";
import ReceiptLongIcon from "@mui/icons-material/ReceiptLong";
import WorkspacePremiumIcon from "@mui/icons-material/WorkspacePremium";
import AppBar from "@mui/material/AppBar";
import Box from "@mui/material/Box";
import Button from "@mui/material/Button";
import Chip from "@mui/material/Chip";
import Divider from "@mui/material/Divider";
import Drawer from "@mui/material/Drawer";
import IconButton from "@mui/material/IconButton";
import List from "@mui/material/List";
import ListItem from "@mui/material/ListItem";
import ListItemButton from "@mui/material/ListItemButton";
import ListItemIcon from "@mui/material/ListItemIcon";
import ListItemText from "@mui/material/ListItemText";
import ListSubheader from "@mui/material/ListSubheader";
import Toolbar from "@mui/material/Toolbar";
import Tooltip from "@mui/material/Tooltip";
import Typography from "@mui/material/Typography";
import { useEffect, useState, type ReactNode } from "react";
import { NavLink, Outlet, useLocation, useNavigate } from "react-router";
import { formatUsd } from "../api/money";
import { useBalance } from "../features/overview/queries";
import { useAuth } from "./auth";
import { useLiveBalance } from "./realtime";

const WIDTH = 240;

interface NavItem {
  to: string;
  label: string;
  icon: ReactNode;
  end?: boolean;
}

const userNav: NavItem[] = [
  { to: "/credits", label: "Overview", icon: <DashboardIcon />, end: true },
  { to: "/credits/usage", label: "Usage", icon: <BarChartIcon /> },
  { to: "/credits/transactions", label: "Transactions", icon: <ReceiptLongIcon /> },
  { to: "/credits/account", label: "Account", icon: <KeyIcon /> },
  { to: "/credits/coupons", label: "Coupons", icon: <CardGiftcardIcon /> },
  { to: "/credits/tiers", label: "Plans", icon: <WorkspacePremiumIcon /> },
];

const adminNav: NavItem[] = [
  { to: "/admin/credits", label: "Accounts", icon: <AdminPanelSettingsIcon /> },
  { to: "/admin/coupons", label: "Coupon admin", icon: <LocalOfferIcon /> },
  { to: "/admin/platform", label: "Platform", icon: <InsightsIcon /> },
];

function NavList({ items, onNavigate }: { items: NavItem[]; onNavigate: () => void }) {
  return (
    <>
      {items.map((item) => (
        <ListItem key={item.to} disablePadding>
          <ListItemButton
            component={NavLink}
            to={item.to}
            end={item.end}
            onClick={onNavigate}
            sx={{
              borderRadius: 2,
              mx: 1,
              my: 0.25,
              "&.active": { bgcolor: "rgba(31,79,209,0.10)", color: "primary.main", "& svg": { color: "primary.main" } },
            }}
          >
            <ListItemIcon sx={{ minWidth: 38 }}>{item.icon}</ListItemIcon>
            <ListItemText primary={item.label} />
          </ListItemButton>
        </ListItem>
      ))}
    </>
  );
}

export function Layout() {
  const { session, isAdmin, signOut } = useAuth();
  const [open, setOpen] = useState(false);
  const navigate = useNavigate();
  const location = useLocation();
  const signedIn = session !== null;
  // Only people with the user role have a credit account of their own; an admin-only
  // session must not open one just by looking at the dashboard.
  const hasAccount = signedIn && session.roles.includes("user");
  const live = useLiveBalance("", hasAccount);
  const balance = useBalance("", hasAccount);
  const close = () => setOpen(false);
  // A new page starts at its top, as a page load would (the browser keeps the scroll offset across
  // client-side navigation); the query string (filters, paging) alone does not move it.
  useEffect(() => {
    window.scrollTo(0, 0);
  }, [location.pathname]);

  const nav = (
    <Box component="nav" aria-label="Main" sx={{ py: 1 }}>
      <List dense={false}>
        <NavList items={hasAccount ? userNav : userNav.filter((i) => i.to === "/credits/tiers")} onNavigate={close} />
      </List>
      {isAdmin ? (
        <>
          <Divider sx={{ my: 1 }} />
          <List subheader={<ListSubheader>Administration</ListSubheader>}>
            <NavList items={adminNav} onNavigate={close} />
          </List>
        </>
      ) : null}
    </Box>
  );

  return (
    <Box sx={{ display: "flex", minHeight: "100vh" }}>
      <AppBar position="fixed" color="inherit" elevation={0} sx={{ zIndex: (t) => t.zIndex.drawer + 1, borderBottom: "1px solid #e3e7f0" }}>
        <Toolbar sx={{ gap: 1 }}>
          <IconButton edge="start" aria-label="Open navigation" onClick={() => setOpen(true)} sx={{ display: { md: "none" } }}>
            <MenuIcon />
          </IconButton>
          <AccountBalanceWalletIcon color="primary" aria-hidden="true" />
          <Typography variant="h6" component="p" sx={{ fontWeight: 750, flexGrow: 1 }}>
            creditmeter
          </Typography>
          {hasAccount && balance.data ? (
            <Tooltip title={live === "live" ? "Updates live" : "Reconnecting…"}>
              <Chip
                color={live === "live" ? "success" : "default"}
                variant="outlined"
                label={formatUsd(balance.data.availableNanos, { precise: true })}
                aria-label={`Available balance ${formatUsd(balance.data.availableNanos, { precise: true })}${live === "live" ? ", live" : ""}`}
                sx={{ fontWeight: 650, display: { xs: "none", sm: "inline-flex" } }}
              />
            </Tooltip>
          ) : null}
          {signedIn ? (
            <>
              <Typography variant="body2" color="text.secondary" sx={{ display: { xs: "none", sm: "block" } }}>
                {session.userId}
                {isAdmin ? " · admin" : ""}
              </Typography>
              <Button
                onClick={() => {
                  void signOut().then(() => navigate("/signin"));
                }}
              >
                Sign out
              </Button>
            </>
          ) : (
            <Button variant="contained" onClick={() => void navigate(`/signin?next=${encodeURIComponent(location.pathname)}`)}>
              Sign in
            </Button>
          )}
        </Toolbar>
      </AppBar>
      <Drawer variant="temporary" open={open} onClose={close} sx={{ display: { md: "none" }, "& .MuiDrawer-paper": { width: WIDTH } }}>
        <Toolbar />
        {nav}
      </Drawer>
      <Drawer
        variant="permanent"
        sx={{
          display: { xs: "none", md: "block" },
          width: WIDTH,
          flexShrink: 0,
          "& .MuiDrawer-paper": { width: WIDTH, boxSizing: "border-box", borderRight: "1px solid #e3e7f0" },
        }}
      >
        <Toolbar />
        {nav}
      </Drawer>
      <Box component="main" sx={{ flexGrow: 1, minWidth: 0, p: { xs: 2, sm: 3, md: 4 } }}>
        <Toolbar />
        <Outlet />
      </Box>
    </Box>
  );
}
