/* The vendored libraries (core/static/vendor) are classic scripts that define globals;
 * containers.html loads them before the modules run. This is the one place that reads
 * those globals: every other module imports from here. */
export const htmx = window.htmx;
export const Terminal = window.Terminal;
export const uPlot = window.uPlot;
export const FitAddon = window.FitAddon ? window.FitAddon.FitAddon : undefined;
