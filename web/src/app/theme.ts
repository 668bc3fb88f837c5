import { createTheme } from "@mui/material/styles";

export const theme = createTheme({
  palette: {
    primary: { main: "#1f4fd1" },
    secondary: { main: "#7a3ee0" },
    success: { main: "#1b7f4b" },
    background: { default: "#f5f7fb", paper: "#ffffff" },
    text: { primary: "#141a2e", secondary: "#4a5370" },
  },
  shape: { borderRadius: 10 },
  typography: {
    fontFamily: 'system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif',
    h4: { fontWeight: 700, letterSpacing: "-0.02em" },
    h5: { fontWeight: 700 },
    h6: { fontWeight: 650 },
  },
  components: {
    MuiCard: { defaultProps: { variant: "outlined" }, styleOverrides: { root: { borderColor: "#e3e7f0" } } },
    MuiButton: { defaultProps: { disableElevation: true }, styleOverrides: { root: { textTransform: "none", fontWeight: 600 } } },
    // The default unselected toggle text is too faint on white (axe color-contrast).
    MuiToggleButton: { styleOverrides: { root: { color: "#4a5370", textTransform: "none", fontWeight: 600 } } },
    MuiTableCell: { styleOverrides: { head: { fontWeight: 650, color: "#4a5370" } } },
  },
});
