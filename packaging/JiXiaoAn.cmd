@echo off
rem Ji XiaoAn launcher: starts JiXiaoAn.exe (or main.py of a source checkout) with
rem administrator rights, which packet capture needs on Windows (with Npcap: https://npcap.com).
rem Windows shows its "allow this app to make changes" prompt; the app itself explains
rem what is missing when Npcap is not installed.
setlocal
set "HERE=%~dp0"
set "TARGET=%HERE%JiXiaoAn.exe"
if not exist "%TARGET%" set "TARGET=%HERE%..\dist\JiXiaoAn\JiXiaoAn.exe"
if not exist "%TARGET%" goto source
if not exist "%SystemRoot%\System32\Npcap\wpcap.dll" echo Npcap is not installed: get it from https://npcap.com
if "%~1"=="" (
  powershell -NoProfile -ExecutionPolicy Bypass -Command "Start-Process -FilePath '%TARGET%' -WorkingDirectory '%HERE%' -Verb RunAs"
) else (
  powershell -NoProfile -ExecutionPolicy Bypass -Command "Start-Process -FilePath '%TARGET%' -ArgumentList '%*' -WorkingDirectory '%HERE%' -Verb RunAs"
)
goto end
:source
rem No build beside this file: run the source checkout one folder up with pythonw.
set "MAIN=%HERE%..\main.py"
if not exist "%MAIN%" (
  echo JiXiaoAn.exe is not beside this launcher and there is no main.py one folder up.
  pause
  goto end
)
powershell -NoProfile -ExecutionPolicy Bypass -Command "Start-Process -FilePath 'pythonw' -ArgumentList '\"%MAIN%\" %*' -WorkingDirectory '%HERE%..' -Verb RunAs"
:end
endlocal
