// How the dashboard writes numbers: the rules of core/report_format.py, which the PNG, the
// Markdown and the text report use (tests/unit/api/test_dashboard_format.py runs both on the
// same numbers). Accuracy levels in percent with two decimals (97.53%), differences in
// points with two decimals, loss with four decimals, counts with thousands separators.
"use strict";

const DASH = "\u2014";

// Python's f"{x:,.{digits}f}": the double's exact value rounded half to even (toFixed(100)
// is exact, so a tie is a true tie), thousands separated by commas, the sign of -0 kept.
function fixed(x, digits, signed = false) {
  if (!Number.isFinite(x)) return String(x);
  const negative = x < 0 || Object.is(x, -0);
  const [whole, frac] = Math.abs(x).toFixed(100).split(".");
  let kept = BigInt(whole + frac.slice(0, digits));
  const rest = frac.slice(digits);
  const beyond = /[1-9]/.test(rest.slice(1));
  if (rest[0] > "5" || (rest[0] === "5" && (beyond || kept % 2n === 1n))) kept += 1n;
  const text = kept.toString().padStart(digits + 1, "0");
  const int = text.slice(0, text.length - digits).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  const body = digits ? `${int}.${text.slice(text.length - digits)}` : int;
  return (negative ? "-" : signed ? "+" : "") + body;
}
function isAccuracy(metric) { return metric !== "test_loss"; }
function level(x, metric) {
  if (x === null || x === undefined) return DASH;
  return isAccuracy(metric) ? `${fixed(100 * x, 2)}%` : fixed(x, 4);
}
function gap(x, metric, signed = false) {
  if (x === null || x === undefined) return DASH;
  return isAccuracy(metric) ? fixed(100 * x, 2, signed) : fixed(x, 4, signed);
}
function levelInterval(ci, metric) {
  if (!ci) return DASH;
  return `${level(ci[0], metric)} to ${level(ci[1], metric)}`;
}
function count(n) { return n === null || n === undefined ? DASH : n.toLocaleString("en-US"); }
