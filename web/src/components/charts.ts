// Chart.js, registered once with only the parts we use (keeps the bundle small).
import { BarElement, CategoryScale, Chart, Legend, LinearScale, LineElement, PointElement, Tooltip } from "chart.js";

Chart.register(BarElement, CategoryScale, LinearScale, LineElement, PointElement, Tooltip, Legend);
Chart.defaults.font.family = 'system-ui, -apple-system, "Segoe UI", Roboto, sans-serif';
Chart.defaults.maintainAspectRatio = false;
// People whose system asks for less motion get each chart drawn at once, without the grow-in animation.
if (typeof window !== "undefined" && window.matchMedia?.("(prefers-reduced-motion: reduce)").matches) {
  Chart.defaults.animation = false;
}

export const palette = ["#1f4fd1", "#7a3ee0", "#1b7f4b", "#d9822b", "#c2185b", "#00838f", "#5d6b8a"];
