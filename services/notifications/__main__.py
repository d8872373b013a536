from services.notifications.service import main

main()
