// A typed medlabel client in a few lines: `paths` and `components` come from
// openapi/openapi.json (openapi-typescript), the calls from openapi-fetch. CI compiles this
// with tsc and runs it against a server: node dist/flow.js BASE_URL ADMIN PASSWORD
import createClient from "openapi-fetch";
import type { components, paths } from "./schema.js";

type Image = components["schemas"]["Image"];
type User = components["schemas"]["User"];

const [base, username, password] = process.argv.slice(2);
if (!base || !username || !password) {
  throw new Error("usage: node dist/flow.js BASE_URL USERNAME PASSWORD");
}

function check<T>(what: string, result: { data?: T; error?: unknown; response: Response }): T {
  if (result.data === undefined) {
    throw new Error(`${what}: HTTP ${result.response.status} ${JSON.stringify(result.error)}`);
  }
  return result.data;
}

const anonymous = createClient<paths>({ baseUrl: base });

// Log in (a session cookie), then make an API token with the session.
const login = await anonymous.POST("/api/v1/auth/login", { body: { username, password } });
const me: User = check("login", login).user;
const cookie = login.response.headers.get("set-cookie")?.split(";")[0] ?? "";
const created = check(
  "create token",
  await anonymous.POST("/api/v1/auth/tokens", {
    body: { name: "typescript flow" },
    headers: { cookie },
  }),
);

// Every later call carries the token.
const client = createClient<paths>({
  baseUrl: base,
  headers: { authorization: `Bearer ${created.token}` },
});
const again = check("me", await client.GET("/api/v1/auth/me"));
if (again.id !== me.id || !again.roles.includes("admin")) {
  throw new Error(`me: ${JSON.stringify(again)}`);
}

// Typed pages: a page of images holds `Image`s, the same type a single read returns.
const page = check("images", await client.GET("/api/v1/images", { params: { query: { limit: 5 } } }));
const images: Image[] = page.items;
for (const image of images) {
  const one: Image = check("image", await client.GET("/api/v1/images/{id}", { params: { path: { id: image.id } } }));
  if (one.id !== image.id) throw new Error("image ids differ");
}

const users = check("users", await client.GET("/api/v1/users", { params: { query: { limit: 10 } } }));
if (!users.items.some((u: User) => u.username === username)) throw new Error("admin not listed");

// Errors are typed problem+json bodies.
const missing = await client.GET("/api/v1/images/{id}", {
  params: { path: { id: "01936f0e-6d2a-7c3b-9a10-2f5e8d1c4b77" } },
});
if (missing.response.status !== 404 || missing.error?.status !== 404) {
  throw new Error(`missing image: ${missing.response.status}`);
}

console.log(`generated TypeScript client: 7 calls answered and typed (${images.length} images, ${users.items.length} users)`);
