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

function chooseFile(file: File, input = 'input[type="file"][aria-label="ONNX file"]') {
  const element = document.querySelector<HTMLInputElement>(input);
  if (!element) throw new Error("no file input");
  fireEvent.change(element, { target: { files: [file] } });
}

function chooseEvaluationSet(file: File) {
  chooseFile(file, 'input[type="file"][aria-label="Evaluation set file"]');
}

const parquet = (name = "eval.parquet", size = 4) => new File([new Uint8Array(size).fill(80)], name);

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

describe("the evaluation set", () => {
  it("is refused before sending when it is not .parquet, and nothing is sent", async () => {
    const user = userEvent.setup();
    let posted = false;
    server.use(
      http.post("*/api/v1/models", () => {
        posted = true;
        return HttpResponse.json(version(), { status: 201 });
      }),
    );
    await openUpload();
    await user.type(screen.getByRole("textbox", { name: /Name/ }), "pump-a");
    chooseFile(onnx());
    chooseEvaluationSet(parquet("eval.csv"));
    const message = await screen.findByText(/^“eval.csv” is not a Parquet file: choose a file ending in .parquet/);
    const picker = screen.getByRole("button", { name: /Evaluation set \(Parquet\)/ });
    expect(picker).toHaveAttribute("aria-invalid", "true");
    expect(picker.getAttribute("aria-describedby") ?? "").toContain(message.id);
    await user.click(screen.getByRole("button", { name: "Upload" }));
    expect(posted).toBe(false);
    await user.click(screen.getByRole("button", { name: "Remove the evaluation set" }));
    expect(screen.queryByText(/is not a Parquet file/)).toBeNull();
  });

  it("is refused before sending when it is over 64 MiB", async () => {
    await openUpload();
    const big = parquet();
    Object.defineProperty(big, "size", { value: 64 * 1024 * 1024 + 1 });
    chooseEvaluationSet(big);
    expect(await screen.findByText(/an evaluation set may be at most 64.0 MiB \(67,108,864 bytes\)/)).toBeInTheDocument();
  });

  it("is sent after the text fields and before the model, with its label column", async () => {
    const user = userEvent.setup();
    // jsdom's XMLHttpRequest does not keep a part's file name: the parts are told apart by size.
    let parts: [string, string | number][] = [];
    server.use(
      http.post("*/api/v1/models", async ({ request }) => {
        const form = await request.formData();
        parts = [...form.entries()].map(([key, value]) => [key, typeof value === "string" ? value : value.size]);
        return HttpResponse.json(version({ version: "1", hasEvaluationSet: true, validationState: "PENDING" }), { status: 201 });
      }),
    );
    await openUpload();
    await user.type(screen.getByRole("textbox", { name: /Name/ }), "pump-a");
    await user.type(screen.getByRole("textbox", { name: /Label column/ }), "failed_within_7d");
    chooseFile(onnx());
    chooseEvaluationSet(parquet("eval.parquet", 5));
    await user.click(screen.getByRole("button", { name: "Upload" }));
    expect(await screen.findByText("Uploaded pump-bearing-risk v1")).toBeInTheDocument();
    expect(screen.getByText(/Its validation runs now .*the claimed metrics on the evaluation set/)).toBeInTheDocument();
    expect(parts).toEqual([
      ["name", "pump-a"],
      ["evaluationLabelColumn", "failed_within_7d"],
      ["evaluationSet", 5],
      ["file", 4],
    ]);
  });

  it("shows the server's refusal of it on its field (EVALUATION_SET_NOT_PARQUET)", async () => {
    const user = userEvent.setup();
    server.use(
      http.post("*/api/v1/models", () =>
        statusError(400, {
          code: 3,
          reason: "EVALUATION_SET_NOT_PARQUET",
          message: "the evaluation set is not a Parquet file (no PAR1 magic); write it with pandas.DataFrame.to_parquet",
          metadata: { field: "evaluationSet" },
        }),
      ),
    );
    await openUpload();
    await user.type(screen.getByRole("textbox", { name: /Name/ }), "pump-a");
    chooseFile(onnx());
    chooseEvaluationSet(parquet());
    await user.click(screen.getByRole("button", { name: "Upload" }));
    const sentences = await screen.findAllByText(/^The evaluation set is not a Parquet file: save it with pandas/);
    expect(sentences).toHaveLength(2);
    expect(screen.getByRole("button", { name: /Evaluation set \(Parquet\)/ })).toHaveAttribute("aria-invalid", "true");
    expect(screen.getByText("EVALUATION_SET_NOT_PARQUET")).toBeInTheDocument();
    // The server's own words once, beside the sentence (not again as a problem without a place).
    expect(screen.getAllByText(/no PAR1 magic/)).toHaveLength(1);
  });
});
