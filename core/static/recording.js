/* The replay page (/recordings/{id}): asciinema-player, a classic script defining the
 * global AsciinemaPlayer, loaded before this module; the cast comes from data-src. */
const el = document.getElementById("recording-player");
const player = window.AsciinemaPlayer;

if (el && player) {
  try {
    player.create(el.dataset.src, el, {
      fit: "width",
      idleTimeLimit: 2,
      theme: "asciinema",
      terminalFontFamily: "ui-monospace, SFMono-Regular, Menlo, Consolas, monospace",
    });
  } catch (err) {
    const box = document.getElementById("recording-error");
    box.textContent = `The player could not start: ${err}`;
    box.hidden = false;
  }
}
