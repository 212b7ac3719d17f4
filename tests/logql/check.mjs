// Reads a JSON array of LogQL expressions on stdin; prints a JSON array of results:
// {"expr": ..., "ok": bool, "error": "<position>: <text around the first error node>"}.
// Uses Grafana's own LogQL grammar (@grafana/lezer-logql): an expression is valid when its
// parse tree has no error node.
import { parser } from "@grafana/lezer-logql";

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const expressions = JSON.parse(Buffer.concat(chunks).toString("utf8"));
const results = expressions.map((expr) => {
  const tree = parser.parse(expr);
  let error = null;
  tree.iterate({
    enter(node) {
      if (error === null && node.type.isError) {
        error = `${node.from}: ${JSON.stringify(expr.slice(Math.max(0, node.from - 20), node.to + 20))}`;
      }
    },
  });
  return { expr, ok: error === null, error };
});
process.stdout.write(JSON.stringify(results));
