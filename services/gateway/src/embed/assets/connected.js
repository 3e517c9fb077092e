// Where the OAuth callback sends the sign-in window once the CRM is connected: tells the
// page that opened it (same origin only) and closes itself. The page also polls the
// connection, so nothing depends on this message arriving.
"use strict";
(function () {
  const params = new URLSearchParams(window.location.search);
  const message = {
    type: "syncline:connected",
    connection_id: params.get("connection_id") || "",
    status: params.get("status") || "",
  };
  if (window.opener && !window.opener.closed) {
    window.opener.postMessage(message, window.location.origin);
    window.close();
  }
})();
