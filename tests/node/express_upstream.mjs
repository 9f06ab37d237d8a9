// An MCP server as the TypeScript SDK's own Express helper builds one (`createMcpExpressApp`,
// whose `express.json()` decodes a body in the charset its Content-Type names), stateless,
// with two tools: `echo` and `secret`. The tests hide `secret` on a route and check that no
// spelling of a request reaches it through the gateway.
//
//   node express_upstream.mjs PORT     (listens on 127.0.0.1:PORT, path /mcp)
import { createMcpExpressApp } from "@modelcontextprotocol/sdk/server/express.js";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { z } from "zod";

const port = Number(process.argv[2]);

function server() {
  const mcp = new McpServer({ name: "express-upstream", version: "1.0.0" });
  mcp.registerTool(
    "echo",
    { description: "Echo the text back.", inputSchema: { text: z.string() } },
    async ({ text }) => ({ content: [{ type: "text", text: `echo: ${text}` }] }),
  );
  mcp.registerTool(
    "secret",
    { description: "A tool the gateway hides.", inputSchema: { text: z.string() } },
    async () => ({ content: [{ type: "text", text: "SECRET TOOL RAN" }] }),
  );
  return mcp;
}

const app = createMcpExpressApp();
app.post("/mcp", async (req, res) => {
  const transport = new StreamableHTTPServerTransport({
    sessionIdGenerator: undefined,
    enableJsonResponse: true,
  });
  res.on("close", () => transport.close());
  const mcp = server();
  await mcp.connect(transport);
  await transport.handleRequest(req, res, req.body);
});
app.listen(port, "127.0.0.1", () => console.log(`listening on ${port}`));
