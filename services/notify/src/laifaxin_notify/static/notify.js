// Laifaxin notify page: register the service worker, ask permission, subscribe with the VAPID key and store
// the subscription through the API. The API token comes from the URL fragment (#token=...) or localStorage.
(function () {
  "use strict";
  const statusEl = document.getElementById("status");
  const say = (text) => { statusEl.textContent = text; };
  const params = new URLSearchParams(location.hash.slice(1));
  if (params.get("token")) { localStorage.setItem("laifaxin.token", params.get("token")); }
  const token = () => localStorage.getItem("laifaxin.token") || "";

  function b64urlToBytes(s) {
    const pad = "=".repeat((4 - (s.length % 4)) % 4);
    const raw = atob((s + pad).replace(/-/g, "+").replace(/_/g, "/"));
    return Uint8Array.from(raw, (c) => c.charCodeAt(0));
  }

  async function api(path, options) {
    const headers = Object.assign({ "Content-Type": "application/json" }, (options || {}).headers);
    if (token()) { headers.Authorization = "Bearer " + token(); }
    const resp = await fetch(path, Object.assign({}, options, { headers }));
    if (!resp.ok) { throw new Error(path + " answered " + resp.status); }
    return resp.status === 204 ? null : resp.json();
  }

  async function storeSubscription(subscription) {
    return api("/v1/bindings/webpush", { method: "POST", body: JSON.stringify(subscription) });
  }

  async function register() {
    if (!("serviceWorker" in navigator)) { say("This browser has no service workers."); return null; }
    const registration = await navigator.serviceWorker.register("/sw.js", { scope: "/" });
    await navigator.serviceWorker.ready;
    say("Service worker ready. Permission: " + Notification.permission);
    return registration;
  }

  async function enable() {
    const permission = await Notification.requestPermission();
    if (permission !== "granted") { say("Notifications were not allowed (" + permission + ")."); return; }
    const registration = await navigator.serviceWorker.ready;
    const { publicKey } = await api("/v1/vapid-public-key");
    const subscription = await registration.pushManager.subscribe({
      userVisibleOnly: true,
      applicationServerKey: b64urlToBytes(publicKey),
    });
    await storeSubscription(subscription.toJSON());
    say("Notifications are on.");
  }

  window.laifaxinNotify = { register, enable, storeSubscription, api };
  window.laifaxinReady = register().catch((err) => { say("Service worker failed: " + err); throw err; });
  document.getElementById("enable").addEventListener("click", () => {
    enable().catch((err) => say("Could not enable notifications: " + err));
  });
})();
