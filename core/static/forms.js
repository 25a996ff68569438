/* The Settings pages' one way to build forms and tables, show errors next to their
 * fields, ask before destroying, and show a secret once. Everything goes through the
 * JSON API (api.js); nothing here builds HTML from strings, so no value is ever parsed
 * as markup. */

import { RequestError, describe, request, send } from "./api.js";

export { request, send };

/** An element: el("td", { class: "x", "data-id": 3 }, "text", child). Attributes with a
 * null/false value are skipped; true sets an empty attribute. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

/** The named controls of a form as an object: checkboxes as booleans, number inputs as
 * numbers (empty: null), everything else as trimmed text (empty: ""). Controls marked
 * data-skip are left out (file pickers that fill a textarea, for instance). */
export function formValues(form) {
  const out = {};
  for (const control of form.elements) {
    if (!control.name || control.disabled || control.dataset.skip !== undefined) continue;
    if (control.type === "checkbox") out[control.name] = control.checked;
    else if (control.type === "number") out[control.name] = control.value === "" ? null : Number(control.value);
    else if (control.type === "radio") {
      if (control.checked) out[control.name] = control.value;
    } else if (control.type !== "file" && control.type !== "submit" && control.type !== "button") {
      out[control.name] = control.type === "password" || control.tagName === "TEXTAREA" ? control.value : control.value.trim();
    }
  }
  return out;
}

/** Forget the errors a form shows. */
export function clearErrors(form) {
  for (const slot of form.querySelectorAll("[data-error-for], .form-error")) slot.textContent = "";
  for (const control of form.querySelectorAll("[aria-invalid]")) control.removeAttribute("aria-invalid");
}

/** Show an error where it belongs: beside the field the server named (an element with
 * data-error-for="name", the field's own control marked aria-invalid and focused), else
 * in the form's .form-error region (role=alert). */
export function showError(form, err) {
  const field = err instanceof RequestError ? err.field : null;
  if (field) {
    // "tls.ca" or "jump.1": the most specific slot the form has.
    const parts = field.split(".");
    for (let n = parts.length; n > 0; n -= 1) {
      const name = parts.slice(0, n).join(".");
      const slot = form.querySelector(`[data-error-for="${CSS.escape(name)}"]`);
      if (slot) {
        slot.textContent = err.message;
        const control = form.querySelector(`[name="${CSS.escape(name)}"]`);
        if (control) {
          control.setAttribute("aria-invalid", "true");
          control.focus();
        }
        return;
      }
    }
  }
  const region = form.querySelector(".form-error");
  if (region) {
    region.textContent = describe(err);
    region.setAttribute("role", "alert");
  } else {
    window.alert(describe(err));
  }
}

/** Wire a form: on submit, clear its errors, disable its buttons, await
 * submit(values, form), and show what went wrong next to the field. The promise of the
 * handler decides success; the form is never submitted the browser's way. */
export function bindForm(form, submit) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    const buttons = [...form.querySelectorAll("button")];
    for (const b of buttons) b.disabled = true;
    try {
      await submit(formValues(form), form);
    } catch (err) {
      showError(form, err);
    } finally {
      for (const b of buttons) b.disabled = false;
    }
  });
}

/** A file picker that fills a textarea with the file's text (PEM keys, certificates):
 * the upload is read in the browser and sent as JSON like a paste. */
export function fileIntoTextarea(fileInput, textarea) {
  fileInput.addEventListener("change", async () => {
    const file = fileInput.files && fileInput.files[0];
    if (!file) return;
    if (file.size > 256 * 1024) {
      window.alert("That file is too large for a key or certificate (256 KiB at most).");
      fileInput.value = "";
      return;
    }
    textarea.value = await file.text();
    textarea.dispatchEvent(new Event("input", { bubbles: true }));
  });
}

function modal(label, ...content) {
  const dialog = el("dialog", { "aria-label": label }, ...content);
  document.body.append(dialog);
  dialog.addEventListener("close", () => dialog.remove());
  dialog.showModal();
  return dialog;
}

/** Ask before a destructive action: a modal with the question and two buttons named
 * by their text; resolves true only when the admin presses the confirming one. */
export function confirmAction(question, confirmLabel = "Delete", { danger = true } = {}) {
  return new Promise((resolve) => {
    const yes = el("button", { type: "button", class: danger ? "btn btn-danger" : "btn btn-primary" }, confirmLabel);
    const no = el("button", { type: "button", class: "btn" }, "Cancel");
    const dialog = modal("Confirm", el("p", { class: "confirm-question" }, question), el("div", { class: "form-actions" }, yes, no));
    let answer = false;
    yes.addEventListener("click", () => {
      answer = true;
      dialog.close();
    });
    no.addEventListener("click", () => dialog.close());
    dialog.addEventListener("close", () => resolve(answer));
    no.focus();
  });
}

async function copy(text, button) {
  try {
    await navigator.clipboard.writeText(text);
    button.textContent = "Copied";
  } catch {
    button.textContent = "Select and copy by hand";
  }
}

/** Show secrets once (a new token, an install command): a modal with each value and a
 * Copy button. Closing it removes the values from the page for good. */
export function showOnce(title, items, note = "Shown once: copy it now, it cannot be shown again.") {
  const blocks = items.map(({ label, value }) => {
    const button = el("button", { type: "button", class: "btn btn-small" }, `Copy ${label.toLowerCase()}`);
    button.addEventListener("click", () => copy(value, button));
    return el("div", { class: "secret-once" }, el("strong", {}, label), el("code", { class: "secret-value" }, value), button);
  });
  const done = el("button", { type: "button", class: "btn btn-primary" }, "Done");
  const dialog = modal(title, el("h2", {}, title), el("p", { class: "note" }, note), ...blocks, el("div", { class: "form-actions" }, done));
  done.addEventListener("click", () => dialog.close());
  return new Promise((resolve) => dialog.addEventListener("close", () => resolve()));
}

/** A date-time from the API for people ("never" for none). */
export function when(iso) {
  if (!iso) return "never";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString();
}
