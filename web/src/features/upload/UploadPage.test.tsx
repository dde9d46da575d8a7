import { fireEvent, screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { http, HttpResponse } from "msw";
import { describe, expect, it } from "vitest";

import { model, version } from "../../test/fixtures";
import { renderApp } from "../../test/render";
import { server, statusError } from "../../test/server";

function baseHandlers() {
  server.use(http.get("*/api/v1/query/exports", () => HttpResponse.json({})));
}

async function openUpload() {
  baseHandlers();
  const view = renderApp("/upload", { roles: ["data_scientist"] });
  await screen.findByRole("heading", { name: "Upload a model", level: 1 });
  return view;
}

function chooseFile(file: File) {
  const input = document.querySelector<HTMLInputElement>('input[type="file"]');
  if (!input) throw new Error("no file input");
  fireEvent.change(input, { target: { files: [file] } });
}

const onnx = (size = 4) => new File([new Uint8Array(size).fill(8)], "model.onnx");

describe("the upload form", () => {
  it("shows the contract's message for a name as it is typed", async () => {
    const user = userEvent.setup();
    await openUpload();
    const name = screen.getByRole("textbox", { name: /Name/ });
    await user.type(name, "Pump");
    expect(await screen.findByText(/^name must be lower-case letters, digits/)).toBeInTheDocument();
    await user.clear(name);
    await user.type(name, "pump-a");
    expect(screen.queryByText(/^name must be lower-case letters/)).toBeNull();
  });

  it("refuses a file that is not ONNX before sending anything", async () => {
    await openUpload();
    chooseFile(new File(["x"], "model.pkl"));
    expect(await screen.findByText(/“model.pkl” is not an ONNX model/)).toBeInTheDocument();
  });

  it("refuses a file over the server's limit from /config.json", async () => {
    baseHandlers();
    renderApp("/upload", { config: { devSignIn: true, oidc: null, maxModelBytes: 3 } });
    await screen.findByRole("heading", { name: "Upload a model", level: 1 });
    chooseFile(onnx(4));
    expect(await screen.findByText(/the registry accepts at most 3 bytes/)).toBeInTheDocument();
  });

  it("can be done with the keyboard: the drop zone has a focusable button", async () => {
    await openUpload();
    const button = screen.getByRole("button", { name: "Choose a file…" });
    button.focus();
    expect(button).toHaveFocus();
  });

  it("uploads, then the models list shows the new version as Pending Approval without a reload", async () => {
    const user = userEvent.setup();
    let created = false;
    server.use(
      http.post("*/api/v1/models", () => {
        created = true;
        return HttpResponse.json(version({ version: "1" }), { status: 201 });
      }),
      http.get("*/api/v1/models", () => HttpResponse.json(created ? { models: [model()] } : {})),
    );
    const { store } = await openUpload();
    await user.type(screen.getByRole("textbox", { name: /Name/ }), "pump-bearing-risk");
    chooseFile(onnx());
    await user.click(screen.getByRole("button", { name: "Upload" }));
    expect(await screen.findByText("Uploaded pump-bearing-risk v1")).toBeInTheDocument();
    expect(sessionStorage.getItem("mlplane.draft.upload")).not.toContain("pump-bearing-risk");
    await user.click(screen.getByRole("link", { name: "See the models" }));
    const row = (await screen.findByRole("link", { name: "pump-bearing-risk" })).closest("tr");
    expect(row).not.toBeNull();
    // The version came from the upload's answer: no GET of it was needed (MSW would refuse).
    expect(await within(row as HTMLElement).findByText("Pending Approval")).toBeInTheDocument();
    expect(store.getState().auth.status).toBe("signedIn");
  });

  it("keeps the form filled on a refusal and puts field violations on the fields", async () => {
    const user = userEvent.setup();
    server.use(
      http.post("*/api/v1/models", () =>
        statusError(400, {
          code: 3,
          reason: "INVALID_FIELD",
          message: "name must be …",
          violations: [{ field: "name", description: "name is already taken by the server's own rule", reason: "model_name" }],
          requestId: "rid-400",
        }),
      ),
    );
    await openUpload();
    await user.type(screen.getByRole("textbox", { name: /Name/ }), "pump-a");
    chooseFile(onnx());
    await user.click(screen.getByRole("button", { name: "Upload" }));
    expect(await screen.findByText("name is already taken by the server's own rule")).toBeInTheDocument();
    expect(screen.getByText("Some fields need attention: see the messages beside them.")).toBeInTheDocument();
    expect(screen.getByText("rid-400")).toBeInTheDocument();
    expect(screen.getByRole("textbox", { name: /Name/ })).toHaveValue("pump-a");
  });

  it("explains the object store being down (503) and keeps everything", async () => {
    const user = userEvent.setup();
    server.use(
      http.post("*/api/v1/models", () =>
        statusError(503, { code: 14, reason: "OBJECT_STORE_UNAVAILABLE", message: "the object store is unavailable", requestId: "rid-503" }),
      ),
    );
    await openUpload();
    await user.type(screen.getByRole("textbox", { name: /Name/ }), "pump-a");
    chooseFile(onnx());
    await user.click(screen.getByRole("button", { name: "Upload" }));
    expect(await screen.findByText(/The model store is unavailable right now/)).toBeInTheDocument();
    expect(screen.getByText("OBJECT_STORE_UNAVAILABLE")).toBeInTheDocument();
    expect(screen.getByRole("textbox", { name: /Name/ })).toHaveValue("pump-a");
    expect(screen.getByText("model.onnx")).toBeInTheDocument();
  });

  it("keeps a draft across a reload (or a sign-in redirect)", async () => {
    const user = userEvent.setup();
    const first = await openUpload();
    await user.type(screen.getByRole("textbox", { name: /Name/ }), "pump-draft");
    await waitFor(() => {
      expect(sessionStorage.getItem("mlplane.draft.upload")).toContain("pump-draft");
    });
    first.unmount();
    await openUpload();
    expect(screen.getByRole("textbox", { name: /Name/ })).toHaveValue("pump-draft");
    expect(screen.getByText(/pick the .onnx file again/)).toBeInTheDocument();
  });
});
