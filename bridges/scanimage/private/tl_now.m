function t = tl_now()
% Seconds on a monotonic clock, for timeouts only (never sent).
t = double(javaMethod('nanoTime', 'java.lang.System')) * 1e-9;
end
