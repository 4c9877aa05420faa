// The baseline of `moim-bench fanout`: a plain Socket.IO 4.8 server that
// does what moim's signaling does with a media toggle: every other
// participant of the room receives it. Port from argv; room from the query.
const { createServer } = require("http");
const { Server } = require("socket.io");

const port = Number(process.argv[2] || 3900);
const http = createServer();
const io = new Server(http, { transports: ["websocket"], serveClient: false });

io.on("connection", (socket) => {
  const room = String(socket.handshake.query.room || "room");
  const peer = socket.id;
  socket.join(room);
  socket.on("media", (media) => {
    socket.to(room).emit("peer_updated", { peer: { peer_id: peer, media } });
  });
});

http.listen(port, "127.0.0.1", () => {
  console.log(`ready ${port}`);
});
