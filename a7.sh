echo "--- resolv.conf"; ls -la /etc/resolv.conf; cat /etc/resolv.conf | tail -2
echo "--- write"; echo "nameserver 203.0.113.53" > /etc/resolv.conf 2>&1; echo rc=$?
echo "--- nscd"; ls -la /run/nscd/socket; python3 -c "
import socket; s=socket.socket(socket.AF_UNIX)
try: s.connect('/run/nscd/socket'); print('nscd CONNECTED')
except OSError as e: print('nscd', e)"
echo "--- dbus"; ls -la /run/dbus/system_bus_socket 2>&1
echo "--- env"; env | sort | head -30
echo "--- getent w/ RES_OPTIONS"; LOCALDOMAIN=allowed.test RES_OPTIONS="ndots:5 attempts:1 timeout:1" getent hosts short; getent hosts api.allowed.test
echo "--- mountinfo"; grep -E "resolv|nscd|dbus|resolve" /proc/self/mountinfo
