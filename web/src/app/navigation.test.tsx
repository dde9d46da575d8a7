import { screen, within } from "@testing-library/react";
import { http, HttpResponse } from "msw";
import { describe, expect, it } from "vitest";

import { renderApp } from "../test/render";
import { server, statusError } from "../test/server";

function emptyLists() {
  server.use(
    http.get("*/api/v1/models", () => HttpResponse.json({})),
    http.get("*/api/v1/approvals", () => HttpResponse.json({})),
  );
}

async function mainNav() {
  return within(await screen.findByRole("navigation", { name: "Main" }));
}

describe("navigation follows the roles", () => {
  it("a data scientist can upload and has no review queue", async () => {
    emptyLists();
    renderApp("/models", { roles: ["data_scientist"], sub: "alice" });
    const nav = await mainNav();
    expect(nav.getAllByRole("link").map((l) => l.textContent)).toEqual(["Data", "Models", "Upload a model", "My exports"]);
    expect(nav.queryByRole("link", { name: "Review queue" })).toBeNull();
    expect(await screen.findByRole("heading", { name: "No models yet" })).toBeInTheDocument();
    expect(screen.getByRole("button", { name: /Signed in as alice/ })).toBeInTheDocument();
  });

  it("an approver reviews and does not upload", async () => {
    emptyLists();
    renderApp("/", { roles: ["model_approver"], sub: "bob" });
    const nav = await mainNav();
    // Approvers read history too (judging a model's data); they upload nothing.
    expect(nav.getAllByRole("link").map((l) => l.textContent)).toEqual(["Data", "Models", "Review queue", "My exports"]);
    expect(nav.queryByRole("link", { name: "Upload a model" })).toBeNull();
    // An approver starts on the review queue.
    expect(await screen.findByRole("heading", { name: "Nothing to review" })).toBeInTheDocument();
  });

  it("explains the 403 of a page forced by its address", async () => {
    server.use(
      http.get("*/api/v1/approvals", () =>
        statusError(403, {
          code: 7,
          reason: "ROLE_REQUIRED",
          message: "ListApprovals requires role model_approver",
          metadata: { method: "ListApprovals", required: "model_approver" },
          requestId: "rid-9",
          domain: "gateway.mlplane",
        }),
      ),
    );
    renderApp("/approvals", { roles: ["data_scientist"] });
    const alert = await screen.findByRole("alert");
    expect(alert).toHaveTextContent("Your account does not have the role model_approver, which this needs.");
    expect(alert).toHaveTextContent("ListApprovals requires role model_approver");
    expect(alert).toHaveTextContent("ROLE_REQUIRED");
    expect(alert).toHaveTextContent("rid-9");
  });

  it("shows how to sign in when signed out", async () => {
    renderApp("/models", { token: null });
    expect(await screen.findByRole("heading", { name: "Sign in to mlplane" })).toBeInTheDocument();
    expect(screen.getByText("mlplane token --role data_scientist --subject alice --url")).toBeInTheDocument();
  });

  it("asks to sign in again over the page on a 401, with the server's message", async () => {
    server.use(
      http.get("*/api/v1/models", () =>
        statusError(401, { code: 16, reason: "TOKEN_EXPIRED", message: "the token has expired: mint one with `mlplane token`", requestId: "rid-401" }),
      ),
    );
    renderApp("/models");
    const dialog = await screen.findByRole("dialog", { name: "Sign in again" });
    expect(dialog).toHaveTextContent("Your sign-in has expired.");
    expect(dialog).toHaveTextContent("the token has expired: mint one with `mlplane token`");
    expect(dialog).toHaveTextContent("rid-401");
    // The page is still there underneath.
    expect(screen.getByRole("heading", { name: "Models", hidden: true })).toBeInTheDocument();
  });
});
